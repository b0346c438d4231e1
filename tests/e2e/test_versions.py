"""Published versions and aliases on /v1: publish, invoke by version and by alias, weighted
canaries, rollback, the delete rules, records that name the version, and a restart that keeps
them. And the store as the source of truth: two wispd processes sharing one store follow each
other's changes, and of two writers racing on one function, the store decides."""

import os
import shutil
import tempfile
import threading
import time
import unittest

from wisp_fixture import SharedStoreTestCase, WispServer, WispTestCase

VERSIONED = "exports.handler = async () => ({v: %r});\n"


def versions_path(fid, suffix=""):
    return f"/v1/functions/{fid}/versions{suffix}"


def aliases_path(fid, suffix=""):
    return f"/v1/functions/{fid}/aliases{suffix}"


class VersionsTest(WispTestCase):
    def publish(self, fid, description=None):
        body = {"description": description} if description is not None else None
        r = self.wisp.request("POST", versions_path(fid), body)
        self.assertEqual(r.status, 201, r)
        return r.json["version"]

    def update_code(self, fid, label):
        r = self.wisp.request("PUT", f"/v1/functions/{fid}", {"code": VERSIONED % label})
        self.assertEqual(r.status, 200, r)

    def call(self, path_id, query=""):
        """Invokes `path_id` (an id or id:qualifier); returns (v, executed version header)."""
        r = self.wisp.request("POST", f"/v1/functions/{path_id}/invoke{query}", {"event": {}})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "success", r)
        self.assertEqual(r.json["executed_version"], r.headers.get("x-wisp-executed-version"))
        return r.json["response"]["v"], r.headers.get("x-wisp-executed-version")

    def test_publish_invoke_by_version_and_alias_then_roll_back(self):
        fid = self.deploy(VERSIONED % "one")
        self.assertEqual(self.publish(fid, "first"), 1)
        # Nothing changed: publishing again answers with the same version.
        self.assertEqual(self.publish(fid), 1)
        self.update_code(fid, "two")
        self.assertEqual(self.publish(fid), 2)
        self.update_code(fid, "three")  # $LATEST moves on; the versions stay as published
        self.assertEqual(self.call(f"{fid}:1"), ("one", "1"))
        self.assertEqual(self.call(fid, "?qualifier=2"), ("two", "2"))
        self.assertEqual(self.call(fid), ("three", "$LATEST"))
        self.assertEqual(self.call(f"{fid}:$LATEST"), ("three", "$LATEST"))
        listed = self.wisp.request("GET", versions_path(fid)).json["versions"]
        self.assertEqual([v["version"] for v in listed], [1, 2])
        self.assertEqual(listed[0]["description"], "first")
        self.assertNotEqual(listed[0]["code_sha256"], listed[1]["code_sha256"])
        self.assertEqual(listed[0]["function"]["runtime"], "node")

        created = self.wisp.request("POST", aliases_path(fid), {"name": "live", "version": 2})
        self.assertEqual(created.status, 201, created)
        self.assertEqual(self.call(f"{fid}:live"), ("two", "2"))
        # Rolling back is moving the alias.
        moved = self.wisp.request("PUT", aliases_path(fid, "/live"), {"version": 1})
        self.assertEqual(moved.status, 200, moved)
        self.assertNotEqual(moved.json["revision_id"], created.json["revision_id"])
        self.assertEqual(self.call(f"{fid}:live"), ("one", "1"))
        # A stale revision id is refused: someone else moved the alias since it was read.
        stale = self.wisp.request("PUT", aliases_path(fid, "/live"),
                                  {"version": 2, "revision_id": created.json["revision_id"]})
        self.assertEqual(stale.status, 409, stale)
        got = self.wisp.request("GET", aliases_path(fid, "/live"))
        self.assertEqual(got.json["version"], 1)
        self.assertEqual([a["name"] for a in
                          self.wisp.request("GET", aliases_path(fid)).json["aliases"]], ["live"])

        # Each record says which version ran.
        deadline = time.monotonic() + 10
        while True:
            logs = self.wisp.request("GET", f"/v1/functions/{fid}/logs?limit=100").json
            ran = {item["executed_version"] for item in logs["items"]}
            if {"1", "2", "$LATEST"} <= ran or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertLessEqual({"1", "2", "$LATEST"}, ran)

    def test_a_canary_alias_sends_a_share_of_calls_to_its_second_version(self):
        fid = self.deploy(VERSIONED % "stable")
        self.publish(fid)
        self.update_code(fid, "canary")
        self.publish(fid)
        r = self.wisp.request("POST", aliases_path(fid), {
            "name": "prod", "version": 1, "additional_version": 2, "additional_weight": 0.3})
        self.assertEqual(r.status, 201, r)
        seen = {"stable": 0, "canary": 0}
        for _ in range(200):
            v, executed = self.call(f"{fid}:prod")
            self.assertEqual(executed, "1" if v == "stable" else "2")
            seen[v] += 1
        # 0.3 of 200 is 60; the bounds are many standard deviations (6.5) wide.
        self.assertGreater(seen["canary"], 20, seen)
        self.assertGreater(seen["stable"], 80, seen)
        # Weight 0 (the canary off) sends everything to the version.
        off = self.wisp.request("PUT", aliases_path(fid, "/prod"), {"additional_weight": 0})
        self.assertEqual(off.status, 200, off)
        for _ in range(20):
            self.assertEqual(self.call(f"{fid}:prod"), ("stable", "1"))

    def test_delete_rules_and_bad_requests(self):
        fid = self.deploy(VERSIONED % "a")
        self.publish(fid)
        self.update_code(fid, "b")
        self.publish(fid)
        self.assertEqual(self.wisp.request("POST", aliases_path(fid),
                                           {"name": "live", "version": 1}).status, 201)
        # A version an alias points at stays.
        held = self.wisp.request("DELETE", versions_path(fid, "/1"))
        self.assertEqual(held.status, 409, held)
        # Aliases need versions that exist, sane weights and names that are not numbers.
        for body, status in [({"name": "x", "version": 9}, 404),
                             ({"name": "x", "version": 1, "additional_version": 2,
                               "additional_weight": 1.5}, 400),
                             ({"name": "x", "version": 1, "additional_version": 1,
                               "additional_weight": 0.5}, 400),
                             ({"name": "123", "version": 1}, 400),
                             ({"name": "live", "version": 2}, 409),
                             ({"name": "x", "version": 1, "weight": 0.1}, 400)]:
            r = self.wisp.request("POST", aliases_path(fid), body)
            self.assertEqual(r.status, status, (body, r))
        self.assertEqual(self.wisp.request("DELETE", aliases_path(fid, "/live")).status, 204)
        self.assertEqual(self.wisp.request("DELETE", versions_path(fid, "/1")).status, 204)
        gone = self.wisp.request("POST", f"/v1/functions/{fid}:1/invoke", {"event": {}})
        self.assertEqual(gone.status, 404, gone)
        unknown = self.wisp.request("POST", f"/v1/functions/{fid}:nosuch/invoke", {"event": {}})
        self.assertEqual(unknown.status, 404, unknown)
        self.assertEqual(self.call(f"{fid}:2"), ("b", "2"))
        # The next version is 3: numbers are never reused.
        self.update_code(fid, "c")
        self.assertEqual(self.publish(fid), 3)

    def test_an_async_call_runs_the_alias_it_names(self):
        fid = self.deploy(VERSIONED % "one")
        self.publish(fid)
        self.update_code(fid, "two")
        self.assertEqual(self.wisp.request("POST", aliases_path(fid),
                                           {"name": "live", "version": 1}).status, 201)
        unknown = self.wisp.request("POST", f"/v1/functions/{fid}:nosuch/invoke", {},
                                    {"X-Invocation-Type": "Event"})
        self.assertEqual(unknown.status, 404, unknown)
        queued = self.wisp.request("POST", f"/v1/functions/{fid}:live/invoke", {},
                                   {"X-Invocation-Type": "Event"})
        self.assertEqual(queued.status, 202, queued)
        iid = queued.json["invocation_id"]
        item = wait_for(lambda: (lambda i: i if i["status"] == "success" else None)(
            self.wisp.request("GET", f"/v1/invocations/{iid}").json["item"]))
        self.assertTrue(item, f"invocation {iid} did not succeed")
        self.assertEqual(item["qualifier"], "live")
        self.assertEqual(item["response"], {"v": "one"})

    def test_deleting_the_function_ends_its_versions(self):
        fid = self.deploy(VERSIONED % "a")
        self.publish(fid)
        self.call(f"{fid}:1")
        self.assertEqual(self.wisp.request("DELETE", f"/v1/functions/{fid}").status, 200)
        r = self.wisp.request("POST", f"/v1/functions/{fid}:1/invoke", {"event": {}})
        self.assertEqual(r.status, 404, r)


class VersionsRestartTest(unittest.TestCase):
    def test_a_restart_keeps_versions_and_aliases(self):
        data_dir = tempfile.mkdtemp(prefix="wisp-e2e-versions-")
        self.addCleanup(shutil.rmtree, data_dir, True)
        wisp = WispServer(data_dir=data_dir)
        try:
            wisp.start()
            fid = wisp.create(name="restart-versions", runtime="node", code=VERSIONED % "one")
            self.assertEqual(wisp.wait_state(fid)["state"], "ready")
            self.assertEqual(wisp.request("POST", versions_path(fid)).status, 201)
            wisp.request("PUT", f"/v1/functions/{fid}", {"code": VERSIONED % "two"})
            self.assertEqual(wisp.request("POST", versions_path(fid)).status, 201)
            self.assertEqual(wisp.request("POST", aliases_path(fid), {
                "name": "live", "version": 1, "additional_version": 2,
                "additional_weight": 0.5}).status, 201)
            wisp.stop()
            wisp.start()
            self.assertEqual([v["version"] for v in
                              wisp.request("GET", versions_path(fid)).json["versions"]], [1, 2])
            alias = wisp.request("GET", aliases_path(fid, "/live")).json
            self.assertEqual((alias["version"], alias["additional_version"]), (1, 2))
            for qualifier, expected in [("1", "one"), ("2", "two")]:
                r = wisp.request("POST", f"/v1/functions/{fid}:{qualifier}/invoke", {"event": {}})
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json["response"], {"v": expected})
            r = wisp.request("POST", f"/v1/functions/{fid}:live/invoke", {"event": {}})
            self.assertEqual(r.status, 200, r)
            self.assertIn(r.json["response"]["v"], ("one", "two"))
            wisp.stop()
        finally:
            wisp.kill()
            wisp.cleanup()


def wait_for(predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


class SharedStoreTest(SharedStoreTestCase):
    """Two wispd processes, each with a data dir of its own, on one store file."""

    def response_on(self, server, fid, qualifier=""):
        path = f"/v1/functions/{fid}{':' + qualifier if qualifier else ''}/invoke"
        r = server.request("POST", path, {"event": {}})
        return r.json["response"]["v"] if r.status == 200 and r.json["status"] == "success" \
            else None

    def test_each_node_follows_the_others_changes(self):
        fid = self.a.create(name="shared-follow", runtime="node", code=VERSIONED % "one")
        self.assertEqual(self.a.wait_state(fid)["state"], "ready")
        # B learns of the function from the store and deploys it.
        self.assertEqual(wait_for(lambda: self.response_on(self.b, fid)), "one")
        r = self.b.request("PUT", f"/v1/functions/{fid}", {"code": VERSIONED % "two"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(wait_for(lambda: self.response_on(self.a, fid) == "two"), True)
        # Versions and aliases published on one node serve on the other.
        self.assertEqual(self.b.request("POST", versions_path(fid)).status, 201)
        self.assertEqual(self.b.request("POST", aliases_path(fid),
                                        {"name": "live", "version": 1}).status, 201)
        self.assertEqual(wait_for(lambda: self.response_on(self.a, fid, "live")), "two")
        # The name is taken store-wide.
        taken = self.b.request("POST", "/v1/functions",
                               {"name": "shared-follow", "runtime": "node",
                                "code": VERSIONED % "x"})
        self.assertEqual(taken.status, 409, taken)
        # A delete on one node ends the function on the other.
        self.assertEqual(self.a.request("DELETE", f"/v1/functions/{fid}").status, 200)
        self.assertTrue(wait_for(lambda: self.b.request("GET", f"/v1/functions/{fid}").status
                                 == 404))

    def test_of_two_writers_racing_the_store_decides(self):
        fid = self.a.create(name="shared-race", runtime="node", code=VERSIONED % "start")
        self.assertEqual(self.a.wait_state(fid)["state"], "ready")
        self.assertEqual(wait_for(lambda: self.response_on(self.b, fid)), "start")
        for round_number in range(3):
            replies = {}
            barrier = threading.Barrier(2)

            def write(server, label):
                client = server.client()
                try:
                    barrier.wait()
                    replies[label] = client.request("PUT", f"/v1/functions/{fid}",
                                                    {"code": VERSIONED % label})
                finally:
                    client.close()

            labels = (f"a{round_number}", f"b{round_number}")
            threads = [threading.Thread(target=write, args=(server, label))
                       for server, label in zip((self.a, self.b), labels)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            statuses = sorted(replies[label].status for label in labels)
            # Both applied one after the other, or one lost the compare-and-swap (409).
            self.assertIn(statuses, ([200, 200], [200, 409]), replies)
            # Whatever happened, both nodes settle on the same code: the store's.
            settled = wait_for(lambda: (self.response_on(self.a, fid) ==
                                        self.response_on(self.b, fid) and
                                        self.response_on(self.a, fid)))
            self.assertIn(settled, labels)
            stored = self.a.request("GET", f"/v1/functions/{fid}").json["item"]["code"]
            self.assertIn(repr(settled), stored)
            if statuses == [200, 409]:
                winner = next(label for label in labels if replies[label].status == 200)
                self.assertEqual(settled, winner)


if __name__ == "__main__":
    unittest.main()
