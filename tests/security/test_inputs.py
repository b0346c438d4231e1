"""Hostile functions, Inputs section, the cases that concern the sandbox (19-21; the API-input
cases 16-18 are covered by tests/e2e): bad handlers, code that fails or exits during init or an
invocation, a runtime that never becomes ready or crash-loops."""

import os
import time
import unittest

import sandbox_fixture as sf
from sandbox_fixture import SecurityTestCase


def tearDownModule():
    sf.stop_server()


def wispd_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    # utime, stime, cutime, cstime: wispd, and the launcher and sandboxes it reaped.
    return sum(int(x) for x in fields[11:15]) / ticks


class BadHandlerTest(SecurityTestCase):
    """19. Missing handler, a handler with ../, an empty handler -> deploy ends in state error
    with a clear message; no path escape while resolving it."""

    def test_bad_handlers(self):
        cases = [
            ("node", "async function other() { return 1; }", "handler", "handler"),
            ("python", "def other(event):\n    return 1\n", "handler", "handler"),
            ("node", "async function handler() { return 1; }", "../../../etc/passwd.handler",
             "handler"),
            ("python", "def handler(event):\n    return 1\n", "../../../usr/lib/os.handler",
             "handler"),
            ("node", "async function handler() { return 1; }", "", "handler"),
        ]
        for runtime, code, handler, words in cases:
            with self.subTest(runtime=runtime, handler=handler):
                r = self.wisp.request("POST", "/v1/functions", {
                    "name": f"badhandler-{len(self.hostile_ids)}-{runtime}", "runtime": runtime,
                    "code": code, "handler": handler})
                if r.status == 400:  # refused outright
                    self.assertIn(words, r.json["error"])
                    continue
                self.assertEqual(r.status, 201, r)
                fid = r.json["id"]
                self.hostile_ids.append(fid)
                item = self.wisp.wait_state(fid, timeout=15)
                self.assertEqual(item["state"], "error", item)
                self.assertIn(words, item["error"])
                self.assertNotIn("root:x:0:0", item["error"])  # never the content of a host file
                inv = self.wisp.invoke(fid, {})
                self.assertNotEqual(inv.json and inv.json.get("status"), "success", inv)
        # And an innocent function alongside, the usual way.
        fid = self.deploy("def handler(event, context=None):\n    return 'fine'\n")
        r, _ = self.run_hostile(fid)
        self.assertEqual(r.json["response"], "fine")
        self.assert_host_clean()


class InitFailureTest(SecurityTestCase):
    """20. Syntax error, exception at import, exit(0) during init or an invocation -> a clear
    error naming the cause; the instance is replaced; the node stays healthy."""

    def test_failing_init(self):
        cases = [
            ("node", "async function handler( {", "SyntaxError"),
            ("python", "def handler(event:\n    return 1\n", "SyntaxError"),
            ("node", "throw new Error('init exploded');\nasync function handler() {}",
             "init exploded"),
            ("python", "raise RuntimeError('py init exploded')\ndef handler(e):\n    pass\n",
             "py init exploded"),
            ("node", "process.exit(0);\nasync function handler() {}", "exit"),
            ("python", "import sys\nsys.exit(0)\ndef handler(e):\n    pass\n", "exit"),
        ]
        for runtime, code, words in cases:
            with self.subTest(runtime=runtime, code=code):
                fid = self.deploy(code, runtime=runtime, expect_state="error")
                item = self.wisp.function(fid)
                self.assertIn(words, item["error"])
        self.assertEqual(self.wisp.health()["status"], "ok")
        self.assert_host_clean()

    def test_exit_during_invocation(self):
        for runtime, code in (
                ("node", "let n = 0;\nexports.handler = async (e) => {"
                         " if (e.exit) process.exit(0); return ++n; };"),
                ("python", "import sys\nn = 0\ndef handler(e, context=None):\n"
                           "    global n\n    if e.get('exit'):\n        sys.exit(0)\n"
                           "    n += 1\n    return n\n")):
            with self.subTest(runtime=runtime):
                fid = self.deploy(code, runtime=runtime)
                self.assertEqual(self.wisp.invoke(fid, {}).json["response"], 1)
                r, _ = self.run_hostile(fid, {"exit": True})
                self.assertCallerError(r, message="runtime exited with code 0")
                # Replaced: a fresh instance starts counting again.
                self.assertEqual(self.wisp.invoke(fid, {}).json["response"], 1)
        self.assert_host_clean()


class StuckRuntimeTest(SecurityTestCase):
    """21. A runtime that never calls /next, or crash-loops -> init timeout, backoff, no hot
    loop on the host."""

    def test_never_ready(self):
        fid = self.deploy("while (true) {}\nasync function handler() {}", runtime="node",
                          expect_state="error")
        item = self.wisp.function(fid)
        self.assertIn("did not become ready within", item["error"])
        t0 = time.monotonic()
        r = self.wisp.invoke(fid, {})
        self.assertLess(time.monotonic() - t0, sf.INIT_TIMEOUT_S + 2)
        self.assertNotEqual(r.status, 500, r)
        self.assert_host_clean()

    def test_crash_loop_is_not_a_hot_loop(self):
        fid = self.deploy("process.exit(3);\nasync function handler() {}", runtime="node",
                          expect_state="error")
        pid = self.wisp.proc.pid
        cpu_before = wispd_cpu_seconds(pid)
        t0 = time.monotonic()
        for _ in range(20):
            r = self.wisp.invoke(fid, {})
            self.assertNotEqual(r.json and r.json.get("status"), "success", r)
        elapsed = time.monotonic() - t0
        cpu = wispd_cpu_seconds(pid) - cpu_before
        # Each attempt may start a runtime (~50 ms of node); a hot loop would burn far more.
        self.assertLess(cpu, 0.2 * 20 + elapsed * 0.5, f"{cpu:.2f} s CPU in {elapsed:.2f} s")
        self.assertEqual(self.wisp.health()["status"], "ok")
        self.assert_host_clean()


if __name__ == "__main__":
    unittest.main()
