"""What a new user of /v1 trips over, each with its fix: runtimes named the AWS way, fields and
query parameters that do not exist, a numeric version in a PUT, a list that carries every
function's code, an event with an `event` key, durations that include the wait for an
instance, AWS_REGION, ?version= on invoke, and a 405 without Allow."""

import os
import subprocess
import threading
import time
import unittest

from wisp_fixture import WispTestCase

HELLO_NODE = "async function handler(event) { return { hello: event.name || 'world' }; }"
ECHO_NODE = "exports.handler = async (event) => event;"
ECHO_PYTHON = "def handler(event):\n    return event\n"


def interpreter_version(argv):
    """The dotted version an interpreter prints, as wispd reads it; None if it cannot run."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return None
    for word in out.replace("go version go", " ").replace("v", " ").split():
        if word[:1].isdigit() and "." in word:
            return word
    return None


class RuntimeNamesTest(WispTestCase):

    def wait_runtime_version(self, fid):
        """runtime_version is probed once at start, off the start path: poll briefly."""
        deadline = time.monotonic() + 30
        while True:
            item = self.wisp.function(fid)
            if item["runtime_version"] is not None or time.monotonic() > deadline:
                return item

    def test_aws_identifiers_run_on_the_installed_interpreter_and_say_which(self):
        python = interpreter_version(["/usr/bin/python3", "--version"])
        node = interpreter_version(["/usr/bin/node", "--version"])
        for alias, canonical, code, version in (
                ("python3.12", "python", ECHO_PYTHON, python),
                ("python3.8", "python", ECHO_PYTHON, python),
                ("nodejs22.x", "node", ECHO_NODE, node),
                ("nodejs18.x", "node", ECHO_NODE, node)):
            with self.subTest(alias=alias):
                r = self.wisp.request("POST", "/v1/functions", {
                    "name": self.unique_name(), "runtime": alias, "code": code})
                self.assertEqual(r.status, 201, r)
                # The reply says at once what the alias became.
                self.assertEqual(r.json["runtime"], canonical)
                fid = r.json["id"]
                self.assertEqual(self.wisp.wait_state(fid)["state"], "ready")
                item = self.wait_runtime_version(fid)
                self.assertEqual(item["runtime"], canonical)
                self.assertEqual(item["runtime_version"], version)
                self.assertEqual(self.invoke_ok(fid, {"a": 1})["response"], {"a": 1})

    def test_unknown_runtime_lists_every_accepted_name(self):
        r = self.wisp.request("POST", "/v1/functions", {
            "name": self.unique_name(), "runtime": "java21", "code": "class X {}"})
        self.assertEqual(r.status, 400, r)
        for name in ("'java21'", "node", "python", "go", "nodejs20.x", "python3.12",
                     "python3.13", "nodejs22.x", "go1.x"):
            self.assertIn(name, r.json["error"])
        fid = self.deploy(HELLO_NODE)
        r = self.wisp.request("PUT", f"/v1/functions/{fid}", {"runtime": "ruby3.3"})
        self.assertEqual(r.status, 400, r)
        self.assertIn("python3.12", r.json["error"])


class FieldsTest(WispTestCase):

    def test_unknown_fields_are_named_with_the_likely_intended_field(self):
        r = self.wisp.request("POST", "/v1/functions", {
            "name": self.unique_name(), "runtime": "node", "code": HELLO_NODE,
            "timeout": 5, "memorySize": 512, "environment": {"A": "1"}})
        self.assertEqual(r.status, 400, r)
        error = r.json["error"]
        self.assertIn('"timeout" (did you mean "timeout_seconds"?)', error)
        self.assertIn('"memorySize" (did you mean "memory_mb"?)', error)
        self.assertIn('"environment" (did you mean "env"?)', error)
        # Nothing was created under that name.
        names = [f["name"] for f in self.wisp.request("GET", "/v1/functions").json["items"]]
        self.assertNotIn(r.json.get("name"), names)

        fid = self.deploy(HELLO_NODE)
        r = self.wisp.request("PUT", f"/v1/functions/{fid}", {"timout_seconds": 5})
        self.assertEqual(r.status, 400, r)
        self.assertIn('did you mean "timeout_seconds"', r.json["error"])
        r = self.wisp.request("PUT", f"/v1/functions/{fid}", {"state": "ready"})
        self.assertEqual(r.status, 400, r)
        self.assertIn("read-only", r.json["error"])
        self.assertEqual(self.wisp.function(fid)["timeout_seconds"], 30)

    def test_a_numeric_version_is_refused_and_a_string_is_the_label(self):
        fid = self.deploy(HELLO_NODE)
        r = self.wisp.request("PUT", f"/v1/functions/{fid}", {"version": 1})
        self.assertEqual(r.status, 400, r)
        self.assertIn("version must be a string", r.json["error"])
        self.assertIn("version_label", r.json["error"])
        r = self.wisp.request("PUT", f"/v1/functions/{fid}", {"version": "2.0.0"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["item"]["version_label"], "2.0.0")
        self.assertEqual(r.json["item"]["version"], 1)  # a label makes no new version

    def test_unknown_query_parameters_are_refused(self):
        fid = self.deploy(HELLO_NODE)
        for path in ("/v1/functions?limt=5", f"/v1/functions/{fid}?verbose=1",
                     f"/v1/functions/{fid}/logs?state=error"):
            with self.subTest(path=path):
                r = self.wisp.request("GET", path)
                self.assertEqual(r.status, 400, r)
                self.assertIn("unknown query parameter", r.json["error"])
        r = self.wisp.request("POST", f"/v1/functions/{fid}/invoke?versoin=1", {"event": {}})
        self.assertEqual(r.status, 400, r)
        self.assertIn('did you mean "version"', r.json["error"])

    def test_list_is_metadata_only_and_paginated(self):
        ids = [self.deploy(HELLO_NODE) for _ in range(3)]
        listed = self.wisp.request("GET", "/v1/functions")
        self.assertEqual(listed.status, 200, listed)
        self.assertTrue(all("code" not in f for f in listed.json["items"]), listed)
        total = listed.json["total"]
        self.assertGreaterEqual(total, 3)
        seen = []
        for offset in range(total):
            page = self.wisp.request("GET", f"/v1/functions?limit=1&offset={offset}").json
            self.assertEqual(len(page["items"]), 1, page)
            self.assertEqual((page["limit"], page["offset"]), (1, offset))
            seen.append(page["items"][0]["id"])
        self.assertEqual(len(set(seen)), total)
        for fid in ids:
            self.assertIn(fid, seen)
        self.assertEqual(self.wisp.request("GET", f"/v1/functions?offset={total}").json["items"],
                         [])
        for q in ("limit=0", "limit=x", "offset=-1"):
            self.assertEqual(self.wisp.request("GET", f"/v1/functions?{q}").status, 400, q)
        self.assertEqual(self.wisp.function(ids[0])["code"], HELLO_NODE)

    def test_logs_filter_by_status(self):
        fid = self.deploy("exports.handler = async (e) => { if (e.fail) throw new Error('no');"
                          " return 'ok'; };")
        for event in ({}, {"fail": True}, {}, {"fail": True}, {}):
            self.wisp.invoke(fid, event)
        errors = self.wisp.request("GET", f"/v1/functions/{fid}/logs?status=error")
        self.assertEqual(errors.status, 200, errors)
        self.assertEqual([r["status"] for r in errors.json["items"]], ["error", "error"])
        ok = self.wisp.request("GET", f"/v1/functions/{fid}/logs?status=success&limit=2")
        self.assertEqual([r["status"] for r in ok.json["items"]], ["success", "success"])
        r = self.wisp.request("GET", f"/v1/functions/{fid}/logs?status=failed")
        self.assertEqual(r.status, 400, r)
        self.assertIn("success, error, timeout", r.json["error"])

    def test_405_says_which_methods_are_allowed(self):
        fid = self.deploy(HELLO_NODE)
        r = self.wisp.request("PATCH", f"/v1/functions/{fid}", {})
        self.assertEqual(r.status, 405, r)
        self.assertEqual(r.headers.get("allow"), "GET, PUT, DELETE")
        r = self.wisp.request("GET", f"/v1/functions/{fid}/invoke")
        self.assertEqual(r.headers.get("allow"), "POST")
        r = self.wisp.request("DELETE", "/v1/functions")
        self.assertEqual(r.headers.get("allow"), "POST, GET")


class EventTest(WispTestCase):

    def test_an_event_with_an_event_key_arrives_whole(self):
        fid = self.deploy(ECHO_NODE)
        path = f"/v1/functions/{fid}/invoke"
        r = self.wisp.request("POST", path, raw=b'{"event":"signup","user":"bob"}')
        self.assertEqual(r.json["response"], {"event": "signup", "user": "bob"}, r)
        # The wrapper is the body with "event" alone (and the boolean "async"): unwrapped.
        r = self.wisp.request("POST", path, {"event": {"event": "signup", "user": "bob"}})
        self.assertEqual(r.json["response"], {"event": "signup", "user": "bob"}, r)
        r = self.wisp.request("POST", path, {"event": "signup", "async": "no"})
        self.assertEqual(r.json["response"], {"event": "signup", "async": "no"}, r)
        r = self.wisp.request("POST", path, {"event": None, "extra": 1})
        self.assertEqual(r.json["response"], {"event": None, "extra": 1}, r)
        r = self.wisp.request("POST", path, {"event": "just a string"})
        self.assertEqual(r.json["response"], "just a string", r)
        r = self.wisp.request("POST", path, {"async": False, "event": {"event": 1}})
        self.assertEqual((r.status, r.json["response"]), (200, {"event": 1}), r)
        # The async wrapper queues the event, also one with an `event` key.
        r = self.wisp.request("POST", path, {"async": True, "event": {"event": "x", "n": 2}})
        self.assertEqual(r.status, 202, r)
        iid = r.json["invocation_id"]
        deadline = time.monotonic() + 30
        while True:
            item = self.wisp.request("GET", f"/v1/invocations/{iid}").json["item"]
            if item["status"] == "success" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(item["response"], {"event": "x", "n": 2}, item)
        r = self.wisp.request("POST", path, {"event": {}},
                              headers={"X-Invocation-Type": "Sometimes"})
        self.assertEqual(r.status, 400, r)


class DurationTest(WispTestCase):

    def test_duration_excludes_the_wait_for_an_instance(self):
        # One instance; two calls of 1 s each at once: the second waits about 1 s for the
        # instance. Its duration is its own second, the wait is apart (as Lambda's Duration).
        fid = self.deploy("exports.handler = async () => { await new Promise(r =>"
                          " setTimeout(r, 1000)); return 'done'; };", max_concurrency=1)
        results = self.wisp.invoke_concurrently(fid, [{}, {}])
        for r in results:
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["status"], "success", r)
        waited = max(results, key=lambda r: r.json["queue_wait_ms"]).json
        self.assertGreaterEqual(waited["queue_wait_ms"], 500, waited)
        for r in results:
            self.assertGreaterEqual(r.json["duration_ms"], 990, r.json)
            # Generous: the 1 s sleep plus scheduling noise, never the 2 s of sleep plus wait.
            self.assertLess(r.json["duration_ms"], 1800, r.json)
        records = self.wisp.request("GET", f"/v1/functions/{fid}/logs").json["items"]
        by_id = {rec["request_id"]: rec for rec in records}
        record = by_id[waited["request_id"]]
        self.assertEqual((record["duration_ms"], record["queue_wait_ms"]),
                         (waited["duration_ms"], waited["queue_wait_ms"]))

    def test_a_cold_start_reports_its_init_duration(self):
        fid = self.deploy("exports.handler = async () => { await new Promise(r =>"
                          " setTimeout(r, 300)); return 1; };", max_concurrency=2)
        # The deploy left one warm instance: of two calls at once, one starts a second.
        results = self.wisp.invoke_concurrently(fid, [{}, {}])
        inits = [r.json["init_duration_ms"] for r in results]
        self.assertEqual(sorted(i is None for i in inits), [False, True], inits)
        cold = next(r.json for r in results if r.json["init_duration_ms"] is not None)
        self.assertGreaterEqual(cold["queue_wait_ms"], cold["init_duration_ms"], cold)
        warm = self.invoke_ok(fid)
        self.assertIsNone(warm["init_duration_ms"])
        records = self.wisp.request("GET", f"/v1/functions/{fid}/logs").json["items"]
        self.assertIn(cold["init_duration_ms"], [rec["init_duration_ms"] for rec in records])


class VersionedInvokeTest(WispTestCase):

    def test_version_parameter(self):
        fid = self.deploy("exports.handler = async () => 'one';")
        path = f"/v1/functions/{fid}/invoke"
        r = self.wisp.request("POST", path + "?version=1", {"event": {}})
        self.assertEqual((r.status, r.json["response"], r.json["version"]), (200, "one", 1), r)
        r = self.wisp.request("PUT", f"/v1/functions/{fid}",
                              {"code": "exports.handler = async () => 'two';"})
        self.assertEqual(r.json["item"]["version"], 2, r)
        r = self.wisp.request("POST", path + "?version=2", {"event": {}})
        self.assertEqual((r.status, r.json["response"]), (200, "two"), r)
        r = self.wisp.request("POST", path + "?version=1", {"event": {}})
        self.assertEqual(r.status, 409, r)
        self.assertIn("version 2 does", r.json["error"])
        r = self.wisp.request("POST", path + "?version=7", {"event": {}})
        self.assertEqual(r.status, 404, r)
        for bad in ("0", "x", "-1", ""):
            r = self.wisp.request("POST", path + f"?version={bad}", {"event": {}})
            self.assertEqual(r.status, 400, (bad, r))
        r = self.wisp.request("POST", path + "?version=2", {"event": {}},
                              headers={"X-Invocation-Type": "Event"})
        self.assertEqual(r.status, 400, r)


class RegionTest(WispTestCase):

    REGION_CODE = ("exports.handler = async (e, ctx) => ({region: process.env.AWS_REGION,"
                   " default: process.env.AWS_DEFAULT_REGION, arn: ctx.invokedFunctionArn});")

    def test_default_region_is_an_aws_region(self):
        fid = self.deploy(self.REGION_CODE)
        r = self.invoke_ok(fid)["response"]
        self.assertEqual((r["region"], r["default"]), ("us-east-1", "us-east-1"), r)
        self.assertTrue(r["arn"].startswith("arn:aws:lambda:us-east-1:"), r)


class ConfiguredRegionTest(WispTestCase):
    server_env = {"WISP_REGION": "eu-central-2"}

    def test_configured_region_reaches_the_sandbox(self):
        fid = self.deploy(RegionTest.REGION_CODE, runtime="node")
        r = self.invoke_ok(fid)["response"]
        self.assertEqual((r["region"], r["default"]), ("eu-central-2", "eu-central-2"), r)
        self.assertTrue(r["arn"].startswith("arn:aws:lambda:eu-central-2:"), r)


class ErrorDocumentTest(WispTestCase):

    def test_every_error_document_has_a_stack_trace(self):
        # The response-size error is written by wispd, not by the runtime's shim.
        fid = self.deploy("exports.handler = async () => 'z'.repeat(7 * 1024 * 1024);",
                          memory_mb=512)
        r = self.wisp.invoke(fid, {})
        self.assertEqual(r.json["status"], "error", repr(r)[:300])
        doc = r.json["response"]
        self.assertEqual(doc["errorType"], "Function.ResponseSizeTooLarge", doc)
        self.assertEqual(list(doc), ["errorType", "errorMessage", "stackTrace"])
        self.assertEqual(doc["stackTrace"], [])


if __name__ == "__main__":
    unittest.main()
