"""The daemon's own lifecycle: persistence across restarts and graceful shutdown."""

import shutil
import signal
import tempfile
import threading
import time
import unittest

from async_support import Wispd
from wisp_fixture import WispServer


class PersistenceTest(unittest.TestCase):

    def setUp(self):
        self.data_dir = tempfile.mkdtemp(prefix="wisp-e2e-persist-")
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.kill()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def server(self):
        s = WispServer(data_dir=self.data_dir)
        self.servers.append(s)
        return s.start()

    def test_functions_survive_restart(self):
        first = self.server()
        node = first.create(name="persist-node", runtime="node",
                            code="exports.handler = async (e) => ({v: 2, env: process.env.K});",
                            env={"K": "kept"}, timeout_seconds=12, memory_mb=300)
        py = first.create(name="persist-py", runtime="python",
                          code="def handler(event):\n    return 'py'\n")
        broken = first.create(name="persist-broken", runtime="node", code="function handler( {")
        for fid in (node, py, broken):
            first.wait_state(fid)
        r = first.request("PUT", f"/v1/functions/{node}", {
            "code": "exports.handler = async (e) => ({v: 2, env: process.env.K});"})
        self.assertEqual(r.status, 200, r)
        # A broken update is remembered as failed, not as the code to serve after a restart.
        r = first.request("PUT", f"/v1/functions/{node}", {"code": "exports.handler = ( =>"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["item"]["version"], 2)
        self.assertIn("error", r.json["item"])
        r = first.invoke(node)
        self.assertEqual(r.json["status"], "success", r)
        first.record_instances(node)
        first.stop()

        second = self.server()
        listed = {f["id"]: f for f in second.request("GET", "/v1/functions").json["items"]}
        self.assertEqual(set(listed), {node, py, broken})
        item = second.wait_state(node)
        self.assertEqual(item["state"], "ready", item)
        self.assertEqual(item["name"], "persist-node")
        self.assertEqual(item["env"], {"K": "kept"})
        self.assertEqual(item["timeout_seconds"], 12)
        self.assertEqual(item["memory_mb"], 300)
        self.assertEqual(item["version"], 2)
        self.assertNotIn("( =>", item["code"])
        r = second.invoke(node)
        self.assertEqual(r.json["status"], "success", r)
        self.assertEqual(r.json["response"], {"v": 2, "env": "kept"})
        self.assertEqual(r.json["version"], 2)
        self.assertEqual(second.wait_state(py)["state"], "ready")
        self.assertEqual(second.invoke(py).json["response"], "py")
        self.assertEqual(second.wait_state(broken)["state"], "error")
        self.assertEqual(second.invoke(broken).status, 409)
        # Invocation records survive too.
        logs = second.request("GET", f"/v1/functions/{node}/logs").json["items"]
        self.assertGreaterEqual(len(logs), 2, logs)
        # Names stay taken.
        r = second.request("POST", "/v1/functions",
                           {"name": "persist-py", "runtime": "python", "code": "x = 1"})
        self.assertEqual(r.status, 409, r)
        # And deletes persist.
        self.assertEqual(second.request("DELETE", f"/v1/functions/{py}").status, 200)
        second.record_instances(node)
        second.stop()

        third = self.server()
        ids = {f["id"] for f in third.request("GET", "/v1/functions").json["items"]}
        self.assertEqual(ids, {node, broken})
        self.assertEqual(third.invoke(node).json["status"], "success")
        third.record_instances(node)
        third.stop()


class ShutdownTest(unittest.TestCase):

    def setUp(self):
        self.wisp = WispServer().start()

    def tearDown(self):
        self.wisp.kill()
        self.wisp.cleanup()

    def test_sigterm_lets_in_flight_call_finish(self):
        slow = self.wisp.create(name="slow", runtime="node",
                                code="exports.handler = async () => { await new Promise("
                                     "r => setTimeout(r, 1000)); return 'finished'; };")
        py = self.wisp.create(name="idle-py", runtime="python",
                              code="def handler(event):\n    return 1\n")
        self.wisp.wait_state(slow)
        self.wisp.invoke(py)  # an idle warm instance that must also go away
        self.wisp.invoke(slow)
        self.wisp.record_instances(py)
        self.wisp.record_instances(slow)

        t, result = self.wisp.invoke_in_background(slow)
        time.sleep(0.3)
        self.wisp.snapshot_sandboxes()
        self.assertTrue(self.wisp.known_pids(), "no sandbox process was seen")
        t0 = time.monotonic()
        rc = self.wisp.stop(check=False, timeout=30)  # sends SIGTERM, waits
        elapsed = time.monotonic() - t0
        t.join(timeout=10)
        r = result.get("r")
        self.assertNotIsInstance(r, Exception, f"in-flight call failed: {r!r}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "success", r)
        self.assertEqual(r.json["response"], "finished")
        self.assertEqual(rc, 0)
        self.assertLess(elapsed, 10)
        self.wisp.assert_no_survivors(self.wisp.last_pid)

    def test_new_calls_refused_while_stopping(self):
        fid = self.wisp.create(name="slow2", runtime="node",
                               code="exports.handler = async () => { await new Promise("
                                    "r => setTimeout(r, 1000)); return 'finished'; };")
        self.wisp.wait_state(fid)
        results = {}

        def call(key, delay):
            time.sleep(delay)
            client = self.wisp.client()
            try:
                results[key] = self.wisp.invoke(fid, client=client)
            except Exception as e:  # noqa: BLE001
                results[key] = e
            finally:
                client.close()

        first = threading.Thread(target=call, args=("first", 0))
        first.start()
        time.sleep(0.4)
        self.wisp.record_instances(fid)
        self.wisp.snapshot_sandboxes()
        self.wisp.proc.send_signal(signal.SIGTERM)
        late = threading.Thread(target=call, args=("late", 0.1))
        late.start()
        first.join(timeout=10)
        late.join(timeout=10)
        self.assertEqual(self.wisp.stop(check=True), 0)
        self.assertEqual(results["first"].json["status"], "success", results["first"])
        # A call that arrives after SIGTERM is refused (503 or no connection) or still
        # served; it must not hang, and wispd still exits 0 (checked above).
        late_r = results["late"]
        if not isinstance(late_r, Exception):
            self.assertIn(late_r.status, (200, 503), late_r)
            if late_r.status == 200:
                self.assertEqual(late_r.json["status"], "success", late_r)

class BackendChoiceTest(unittest.TestCase):
    """The sandbox backend comes from configuration; a name wispd does not know stops it at start
    with the valid names, before any sandbox or launcher exists."""

    def test_an_unknown_backend_is_refused_with_the_valid_names(self):
        bad = Wispd(env={"WISP_SANDBOX_BACKEND": "firecracker"})
        try:
            with self.assertRaises(AssertionError) as failed:
                bad.start(timeout=15)
            message = str(failed.exception)
            self.assertIn("sandbox_backend: 'firecracker' is not a backend; valid: process", message)
        finally:
            bad.close()

    def test_the_process_backend_is_the_default_and_can_be_named(self):
        named = Wispd(env={"WISP_SANDBOX_BACKEND": "process"})
        try:
            named.start()
            self.assertIn("limits: ", named.log())
        finally:
            named.close()


if __name__ == "__main__":
    unittest.main()
