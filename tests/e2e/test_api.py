"""The functions API of a real wispd: create/get/list/update/delete, and every error status."""

import time
import unittest

from wisp_fixture import WispTestCase, raw_request

HELLO_NODE = "async function handler(event) { return { hello: event.name || 'world' }; }"


class FunctionsApiTest(WispTestCase):

    def test_create_get_list_defaults(self):
        name = self.unique_name()
        r = self.wisp.request("POST", "/v1/functions",
                              {"name": name, "runtime": "node", "code": HELLO_NODE})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.headers.get("content-type", "").split(";")[0], "application/json")
        fid = r.json["id"]
        self.assertIsInstance(fid, str)
        self.assertTrue(fid)

        # The function deploys in the background: creating/deploying, then ready quickly.
        item = self.wisp.function(fid)
        self.assertIn(item["state"], ("creating", "deploying", "ready"))
        t0 = time.monotonic()
        item = self.wisp.wait_state(fid)
        self.assertEqual(item["state"], "ready", item)
        self.assertLess(time.monotonic() - t0, 5)

        self.assertEqual(item["id"], fid)
        self.assertEqual(item["name"], name)
        self.assertEqual(item["runtime"], "node")
        self.assertEqual(item["code"], HELLO_NODE)
        self.assertEqual(item["handler"], "handler")
        self.assertEqual(item["timeout_seconds"], 30)
        self.assertEqual(item["memory_mb"], 256)
        self.assertEqual(item["vcpu"], 1)
        self.assertEqual(item["env"], {})
        self.assertEqual(item["version"], 1)
        for key in ("created_at", "updated_at", "last_invoked_at", "instances"):
            self.assertIn(key, item)
        self.assertIsNone(item["last_invoked_at"])
        self.assertNotIn("error", item)

        listed = self.wisp.request("GET", "/v1/functions")
        self.assertEqual(listed.status, 200, listed)
        ids = [f["id"] for f in listed.json["items"]]
        self.assertIn(fid, ids)

        inv = self.invoke_ok(fid, {"name": "wisp"})
        self.assertEqual(inv["response"], {"hello": "wisp"})
        item = self.wisp.function(fid)
        self.assertIsNotNone(item["last_invoked_at"])
        self.assertGreaterEqual(len(item["instances"]), 1)
        inst = item["instances"][0]
        for key in ("id", "version", "pid", "state", "invocations", "started_at"):
            self.assertIn(key, inst)
        self.assertEqual(sum(i["invocations"] for i in item["instances"]), 1)

    def test_runtime_aliases_and_custom_fields(self):
        for alias, canonical in (("nodejs", "node"), ("python3", "python")):
            code = HELLO_NODE if canonical == "node" else \
                "def handler(event):\n    return {'hello': event.get('name', 'world')}\n"
            fid = self.deploy(code, runtime=alias, timeout_seconds=5, memory_mb=512,
                              vcpu=2, env={"A": "1"})
            item = self.wisp.function(fid)
            self.assertEqual(item["runtime"], canonical)
            self.assertEqual(item["timeout_seconds"], 5)
            self.assertEqual(item["memory_mb"], 512)
            self.assertEqual(item["vcpu"], 2)
            self.assertEqual(item["env"], {"A": "1"})
            self.assertEqual(self.invoke_ok(fid, {"name": "x"})["response"], {"hello": "x"})

    def test_invoke_while_deploying_waits(self):
        # No polling: the invoke right after the 201 must wait for the deploy, not fail.
        fid = self.wisp.create(name=self.unique_name(), runtime="python",
                               code="def handler(event):\n    return 42\n")
        inv = self.invoke_ok(fid)
        self.assertEqual(inv["response"], 42)

    def test_duplicate_name_conflict(self):
        name = self.unique_name()
        self.wisp.create(name=name, runtime="node", code=HELLO_NODE)
        r = self.wisp.request("POST", "/v1/functions",
                              {"name": name, "runtime": "node", "code": HELLO_NODE})
        self.assertEqual(r.status, 409, r)
        self.assertIsInstance(r.json.get("error"), str)

    def test_update_config_only_and_code(self):
        fid = self.deploy("async function handler() { return 'v1'; }")
        self.assertEqual(self.invoke_ok(fid)["response"], "v1")

        # Timeout only: no new version needed.
        r = self.wisp.request("PUT", f"/v1/functions/{fid}", {"timeout_seconds": 7})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["item"]["timeout_seconds"], 7)
        self.assertEqual(r.json["item"]["version"], 1)
        self.assertEqual(r.json["item"]["state"], "ready")

        # Code: a new version, serving when the PUT returns.
        r = self.wisp.request("PUT", f"/v1/functions/{fid}",
                              {"code": "async function handler() { return 'v2'; }"})
        self.assertEqual(r.status, 200, r)
        item = r.json["item"]
        self.assertEqual(item["version"], 2)
        self.assertEqual(item["state"], "ready")
        self.assertEqual(item["timeout_seconds"], 7)
        inv = self.invoke_ok(fid)
        self.assertEqual(inv["response"], "v2")
        self.assertEqual(inv["version"], 2)

        # Env change: another version, and the function sees it.
        r = self.wisp.request("PUT", f"/v1/functions/{fid}", {
            "code": "async function handler() { return process.env.GREETING; }",
            "env": {"GREETING": "hi"}})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["item"]["version"], 3)
        self.assertEqual(self.invoke_ok(fid)["response"], "hi")

        # Rename.
        new_name = self.unique_name("renamed")
        r = self.wisp.request("PUT", f"/v1/functions/{fid}", {"name": new_name})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.wisp.function(fid)["name"], new_name)
        self.assertEqual(self.invoke_ok(fid)["response"], "hi")

    def test_timeout_only_update_applies_to_warm_instances(self):
        fid = self.deploy("exports.handler = async (e) => { await new Promise("
                          "r => setTimeout(r, e.ms)); return 'slept'; };", timeout_seconds=1)
        r = self.wisp.invoke(fid, {"ms": 1500})
        self.assertEqual(r.json["status"], "timeout", r)
        self.invoke_ok(fid, {"ms": 1})  # a warm instance of version 1
        r = self.wisp.request("PUT", f"/v1/functions/{fid}", {"timeout_seconds": 3})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["item"]["version"], 1)
        inv = self.invoke_ok(fid, {"ms": 1500})
        self.assertEqual(inv["version"], 1)
        # And lowering it takes effect too.
        r = self.wisp.request("PUT", f"/v1/functions/{fid}", {"timeout_seconds": 1})
        self.assertEqual(r.status, 200, r)
        r = self.wisp.invoke(fid, {"ms": 2500})
        self.assertEqual(r.json["status"], "timeout", r)
        self.assertIn("Task timed out after 1.00 seconds", r.json["response"]["errorMessage"])

    def test_memory_update_applies(self):
        code = ("exports.handler = async (e) => { const b = Buffer.alloc(200 * 1024 * 1024)"
                ".fill(1); return [b.length, process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE]; };")
        fid = self.deploy(code, memory_mb=128)
        r = self.wisp.invoke(fid)
        self.assertEqual(r.json["status"], "error", r)
        self.assertIn("out of memory (limit 128 MB)", r.json["response"]["errorMessage"])
        r = self.wisp.request("PUT", f"/v1/functions/{fid}", {"memory_mb": 512})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["item"]["version"], 2)
        inv = self.invoke_ok(fid)
        self.assertEqual(inv["response"], [200 * 1024 * 1024, "512"])

    def test_rename_reaches_context(self):
        fid = self.deploy("exports.handler = async (e, c) => [c.functionName,"
                          " process.env.AWS_LAMBDA_FUNCTION_NAME];")
        old = self.wisp.function(fid)["name"]
        self.assertEqual(self.invoke_ok(fid)["response"], [old, old])
        new = self.unique_name("renamed")
        r = self.wisp.request("PUT", f"/v1/functions/{fid}", {"name": new})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.invoke_ok(fid)["response"], [new, new])

    def test_update_switch_runtime(self):
        fid = self.deploy("async function handler() { return 'node'; }")
        self.assertEqual(self.invoke_ok(fid)["response"], "node")
        r = self.wisp.request("PUT", f"/v1/functions/{fid}", {
            "runtime": "python", "code": "def handler(event):\n    return 'python'\n"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["item"]["runtime"], "python")
        self.assertEqual(self.invoke_ok(fid)["response"], "python")

    def test_update_with_broken_code_keeps_old_version(self):
        fid = self.deploy("async function handler() { return 'good'; }")
        self.assertEqual(self.invoke_ok(fid)["response"], "good")
        r = self.wisp.request("PUT", f"/v1/functions/{fid}",
                              {"code": "async function handler( { return 'bad' }"})
        # The PUT itself may report the failure or not, but the old version keeps serving.
        self.assertIn(r.status, (200, 400, 409, 422), r)
        item = self.wisp.function(fid)
        self.assertEqual(item["state"], "ready", item)
        self.assertIsInstance(item.get("error"), str, item)
        self.assertTrue(item["error"], item)
        inv = self.invoke_ok(fid)
        self.assertEqual(inv["response"], "good")
        self.assertEqual(inv["version"], 1)

        # A later good update clears the error.
        r = self.wisp.request("PUT", f"/v1/functions/{fid}",
                              {"code": "async function handler() { return 'fixed'; }"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.invoke_ok(fid)["response"], "fixed")
        self.assertNotIn("error", self.wisp.function(fid))

    def test_delete(self):
        fid = self.deploy("async function handler() { return 1; }")
        self.invoke_ok(fid)
        item = self.wisp.function(fid)  # records instance pids
        pids = [i["pid"] for i in item["instances"]]
        self.assertTrue(pids)
        r = self.wisp.request("DELETE", f"/v1/functions/{fid}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json, {"message": "Function deleted"})
        self.assertEqual(self.wisp.request("GET", f"/v1/functions/{fid}").status, 404)
        self.assertEqual(self.wisp.request("GET", f"/v1/functions/{fid}/logs").status, 404)
        self.assertEqual(self.wisp.invoke(fid).status, 404)
        self.assertEqual(self.wisp.request("DELETE", f"/v1/functions/{fid}").status, 404)
        self.assertNotIn(fid, [f["id"] for f in
                               self.wisp.request("GET", "/v1/functions").json["items"]])
        # Its instances are killed.
        import os
        deadline = time.monotonic() + 5
        while any(os.path.exists(f"/proc/{p}") for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        for p in pids:
            self.assertFalse(os.path.exists(f"/proc/{p}"), f"instance pid {p} survived DELETE")
        # The name is free again.
        name = self.unique_name()
        fid2 = self.deploy("async function handler() { return 2; }", name=name)
        self.wisp.request("DELETE", f"/v1/functions/{fid2}")
        self.deploy("async function handler() { return 3; }", name=name)

    def test_rename_to_taken_name_conflicts(self):
        taken = self.unique_name()
        self.deploy(HELLO_NODE, name=taken)
        fid = self.deploy(HELLO_NODE)
        r = self.wisp.request("PUT", f"/v1/functions/{fid}", {"name": taken})
        self.assertEqual(r.status, 409, r)
        self.assertNotEqual(self.wisp.function(fid)["name"], taken)

    def test_concurrent_creates_of_one_name(self):
        import threading
        name = self.unique_name()
        statuses = []
        lock = threading.Lock()
        barrier = threading.Barrier(6)

        def create():
            client = self.wisp.client()
            try:
                barrier.wait()
                r = client.request("POST", "/v1/functions",
                                   {"name": name, "runtime": "node", "code": HELLO_NODE})
                with lock:
                    statuses.append(r.status)
            finally:
                client.close()

        threads = [threading.Thread(target=create) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        self.assertEqual(sorted(statuses), [201] + [409] * 5)
        named = [f for f in self.wisp.request("GET", "/v1/functions").json["items"]
                 if f["name"] == name]
        self.assertEqual(len(named), 1)

    def test_delete_during_invoke(self):
        fid = self.deploy("exports.handler = async () => { await new Promise("
                          "r => setTimeout(r, 1000)); return 'done'; };")
        self.invoke_ok(fid)
        self.wisp.record_instances(fid)
        t, result = self.wisp.invoke_in_background(fid, timeout=20)
        time.sleep(0.3)
        self.wisp.record_instances(fid)
        r = self.wisp.request("DELETE", f"/v1/functions/{fid}")
        self.assertEqual(r.status, 200, r)
        t.join(timeout=20)
        self.assertFalse(t.is_alive(), "the in-flight call hung after DELETE")
        # The in-flight call gets an answer (finished or failed), never a dropped connection.
        self.assertNotIsInstance(result["r"], Exception, result)
        self.assertIn(result["r"].status, (200, 404, 409, 410, 503), result["r"])
        self.assertEqual(self.wisp.request("GET", f"/v1/functions/{fid}").status, 404)
        self.assertEqual(self.wisp.health()["status"], "ok")

    def test_health_counters(self):
        before = self.wisp.health()
        for key in ("status", "uptime", "totalInvocations", "successfulInvocations",
                    "failedInvocations"):
            self.assertIn(key, before)
        self.assertEqual(before["status"], "ok")
        fid = self.deploy("async function handler(e) { if (e.fail) throw new Error('x');"
                          " return 1; }")
        self.invoke_ok(fid)
        r = self.wisp.invoke(fid, {"fail": True})
        self.assertEqual(r.json["status"], "error")
        after = self.wisp.health()
        self.assertGreaterEqual(after["totalInvocations"] - before["totalInvocations"], 2)
        self.assertGreaterEqual(after["successfulInvocations"] -
                                before["successfulInvocations"], 1)
        self.assertGreaterEqual(after["failedInvocations"] - before["failedInvocations"], 1)
        self.assertGreaterEqual(after["uptime"], before["uptime"])
        # The deploy's instance served the first call warm; a call never counts as cold twice.
        self.assertLessEqual(after["coldStarts"] - before["coldStarts"], 2)
        self.assertGreater(after["durationP99Micros"], 0)
        self.assertGreaterEqual(after["durationP99Micros"], after["durationP50Micros"])
        # A deleted function's calls stay in the node's totals: counters never go backwards.
        self.assertEqual(self.wisp.request("DELETE", f"/v1/functions/{fid}").status, 200)
        self.assertGreaterEqual(self.wisp.health()["totalInvocations"], after["totalInvocations"])
        # Throttles and refusals are counted apart from calls that ran.
        missing = self.wisp.request("POST", "/v1/functions/no-such-function/invoke", {})
        self.assertEqual(missing.status, 404)
        final = self.wisp.health()
        self.assertEqual(final["rejectedInvocations"] - after["rejectedInvocations"], 1)
        self.assertEqual(final["totalInvocations"], after["totalInvocations"])


class ApiErrorsTest(WispTestCase):

    def assertError(self, r, status):
        self.assertEqual(r.status, status, r)
        self.assertIsInstance(r.json, dict, r)
        self.assertIsInstance(r.json.get("error"), str, r)
        self.assertTrue(r.json["error"], r)

    def create_raw(self, body):
        return self.wisp.request("POST", "/v1/functions", body)

    def test_400_bad_json(self):
        self.assertError(self.wisp.request("POST", "/v1/functions", raw=b"{not json"), 400)
        self.assertError(self.wisp.request("POST", "/v1/functions", raw=b"[1,2"), 400)
        fid = self.deploy(HELLO_NODE)
        self.assertError(self.wisp.request("POST", f"/v1/functions/{fid}/invoke",
                                           raw=b'{"event": '), 400)
        self.assertError(self.wisp.request("PUT", f"/v1/functions/{fid}", raw=b"{,}"), 400)
        # The function still works.
        self.invoke_ok(fid)

    def test_400_wrong_types_and_values(self):
        base = {"runtime": "node", "code": HELLO_NODE}
        cases = [
            {"name": 5},
            {"runtime": 3},
            {"code": ["x"]},
            {"timeout_seconds": "30"},
            {"timeout_seconds": 0},
            {"timeout_seconds": 901},
            {"memory_mb": 127},
            {"memory_mb": 10241},
            {"memory_mb": "big"},
            {"vcpu": "one"},
            {"env": {"A": 1}},
            {"env": ["A=1"]},
            {"handler": 7},
            {"runtime": "cobol"},
            {"runtime": ""},
            {"code": ""},
            {"code": "   \n"},
        ]
        for extra in cases:
            with self.subTest(extra=extra):
                body = dict(base, name=self.unique_name())
                body.update(extra)
                self.assertError(self.create_raw(body), 400)
        # Missing fields.
        self.assertError(self.create_raw({"name": self.unique_name(), "runtime": "node"}), 400)
        self.assertError(self.create_raw({"name": self.unique_name(), "code": HELLO_NODE}), 400)
        self.assertError(self.create_raw({"runtime": "node", "code": HELLO_NODE}), 400)
        self.assertError(self.wisp.request("POST", "/v1/functions", raw=b"[]"), 400)
        self.assertError(self.wisp.request("POST", "/v1/functions", raw=b'"str"'), 400)

    def test_400_bad_update(self):
        fid = self.deploy(HELLO_NODE)
        for body in ({"timeout_seconds": 0}, {"memory_mb": 64}, {"runtime": "cobol"},
                     {"code": ""}, {"name": 1}, {"env": {"X": 2}}):
            with self.subTest(body=body):
                self.assertError(self.wisp.request("PUT", f"/v1/functions/{fid}", body), 400)
        item = self.wisp.function(fid)
        self.assertEqual(item["version"], 1)
        self.assertEqual(item["timeout_seconds"], 30)
        self.invoke_ok(fid)

    def test_400_deeply_nested_json(self):
        deep = b"[" * 100000 + b"]" * 100000
        fid = self.deploy(HELLO_NODE)
        self.assertError(self.wisp.request("POST", "/v1/functions", raw=deep), 400)
        self.assertError(self.wisp.request("POST", f"/v1/functions/{fid}/invoke", raw=deep), 400)
        self.assertError(self.wisp.request("POST", f"/v1/functions/{fid}/invoke",
                                           raw=b'{"event":' + deep + b"}"), 400)
        self.assertError(self.wisp.request("PUT", f"/v1/functions/{fid}", raw=deep), 400)
        self.assertEqual(self.wisp.health()["status"], "ok")
        self.invoke_ok(fid)

    def test_400_bad_logs_limit(self):
        fid = self.deploy(HELLO_NODE)
        for q in ("limit=abc", "limit=-1", "limit=0", "offset=-5", "offset=x",
                  "limit=99999999999999999999"):
            with self.subTest(q=q):
                self.assertError(self.wisp.request("GET", f"/v1/functions/{fid}/logs?{q}"), 400)

    def test_404(self):
        missing = "00000000-0000-0000-0000-000000000000"
        self.assertError(self.wisp.request("GET", f"/v1/functions/{missing}"), 404)
        self.assertError(self.wisp.request("PUT", f"/v1/functions/{missing}",
                                           {"timeout_seconds": 5}), 404)
        self.assertError(self.wisp.request("DELETE", f"/v1/functions/{missing}"), 404)
        self.assertError(self.wisp.request("POST", f"/v1/functions/{missing}/invoke", {}), 404)
        self.assertError(self.wisp.request("GET", f"/v1/functions/{missing}/logs"), 404)
        self.assertError(self.wisp.request("GET", "/nope"), 404)
        self.assertError(self.wisp.request("GET", "/v1/functionsx"), 404)
        self.assertError(self.wisp.request("GET", "/v1/functions/a/b/c"), 404)

    def test_405_wrong_method(self):
        fid = self.deploy(HELLO_NODE)
        self.assertError(self.wisp.request("DELETE", "/v1/functions"), 405)
        self.assertError(self.wisp.request("PATCH", f"/v1/functions/{fid}", {}), 405)
        self.assertError(self.wisp.request("GET", f"/v1/functions/{fid}/invoke"), 405)
        self.assertError(self.wisp.request("POST", "/health", {}), 405)
        self.assertError(self.wisp.request("POST", f"/v1/functions/{fid}", {}), 405)

    def test_413_body_too_large(self):
        fid = self.deploy(HELLO_NODE)
        big = b'{"event": {"data": "' + b"x" * (7 << 20) + b'"}}'
        self.assertError(raw_request(self.wisp.port, "POST", f"/v1/functions/{fid}/invoke", big),
                         413)
        big_create = (b'{"name":"big","runtime":"node","code":"' + b"x" * (7 << 20) + b'"}')
        self.assertError(raw_request(self.wisp.port, "POST", "/v1/functions", big_create), 413)
        # wispd stays healthy and a payload just under the limit still works.
        self.assertEqual(self.wisp.health()["status"], "ok")
        ok = self.wisp.invoke(fid, {"data": "y" * (5 << 20)})
        self.assertEqual(ok.status, 200, ok)

    def test_415_text_plain(self):
        fid = self.deploy(HELLO_NODE)
        r = self.wisp.request("POST", f"/v1/functions/{fid}/invoke", raw=b'{"event":{}}',
                              headers={"Content-Type": "text/plain"})
        self.assertError(r, 415)
        r = self.wisp.request("POST", "/v1/functions",
                              raw=b'{"name":"tp","runtime":"node","code":"x"}',
                              headers={"Content-Type": "text/plain"})
        self.assertError(r, 415)
        # application/json with a charset is fine.
        r = self.wisp.request("POST", f"/v1/functions/{fid}/invoke", raw=b'{"event":{}}',
                              headers={"Content-Type": "application/json; charset=utf-8"})
        self.assertEqual(r.status, 200, r)

    def test_invoke_body_forms(self):
        fid = self.deploy("async function handler(event) { return event; }")
        # {"event": ...} passes the event.
        self.assertEqual(self.invoke_ok(fid, {"a": [1, 2]})["response"], {"a": [1, 2]})
        # A body without "event" is itself the event.
        r = self.wisp.request("POST", f"/v1/functions/{fid}/invoke", raw=b'{"b": 2}')
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["response"], {"b": 2})
        r = self.wisp.request("POST", f"/v1/functions/{fid}/invoke", raw=b'[1,"two"]')
        self.assertEqual(r.json["response"], [1, "two"])
        # An empty body is {}.
        r = self.wisp.request("POST", f"/v1/functions/{fid}/invoke", raw=b"")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["response"], {})
        # Scalars and unicode survive the round trip.
        self.assertEqual(self.invoke_ok(fid, "h\u00e9llo \u2603 \U0001F600")["response"],
                         "h\u00e9llo \u2603 \U0001F600")
        self.assertEqual(self.invoke_ok(fid, None)["response"], {})
        r = self.wisp.request("POST", f"/v1/functions/{fid}/invoke", raw=b'{"event": null}')
        self.assertEqual(r.status, 200, r)
        self.assertIsNone(r.json["response"])


if __name__ == "__main__":
    unittest.main()
