"""Deploys go through the node's admission like any call, and a delete ends a function at once.

Issue findings: a burst of creates made a sandbox per deploy at once, far over the node's
instance and memory caps (module-level code runs at deploy, so a function allocating at import
multiplied it); and a delete racing a deploy left the deleted function's code on disk and its
instance alive until the idle reaper.
"""

import os
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))

import wisp_fixture  # noqa: E402
from wisp_fixture import WispTestCase  # noqa: E402

CAP = 3
PY_ECHO = "def handler(event):\n    return {'n': event.get('n')}\n"
GO_MAIN = 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println(`{"ok": true}`) }\n'


def instance_groups(wispd_pid):
    """Instance cgroups that exist now under wispd's group: one per sandbox, from before its
    clone until after its last process is gone (the launcher removes it before it reports the
    exit), so the count is the number of sandboxes the node holds."""
    for base in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup/memory", "/sys/fs/cgroup"):
        group = os.path.join(base, "wisp", str(wispd_pid))
        if os.path.isdir(group):
            try:
                return [e for e in os.listdir(group) if os.path.isdir(os.path.join(group, e))]
            except FileNotFoundError:
                return []
    return None


class DeployAdmissionTest(WispTestCase):
    server_env = {"WISP_MAX_INSTANCES_TOTAL": str(CAP),
                  "WISP_PREWARM_NODE_INSTANCES": "0", "WISP_PREWARM_PYTHON_INSTANCES": "0"}

    def test_a_burst_of_creates_never_holds_more_sandboxes_than_the_cap(self):
        pid = self.wisp.proc.pid
        if instance_groups(pid) is None:
            self.skipTest("wispd runs without cgroups here: sandboxes cannot be counted")
        most, stop = [0], threading.Event()

        def sample():
            while not stop.is_set():
                groups = instance_groups(pid) or []
                most[0] = max(most[0], len(groups))
                time.sleep(0.002)

        sampler = threading.Thread(target=sample)
        sampler.start()
        ids, lock = [], threading.Lock()

        def create(worker):
            for i in range(3):
                fid = self.wisp.create(name=f"burst-{worker}-{i}", runtime="python", code=PY_ECHO)
                with lock:
                    ids.append(fid)

        try:
            workers = [threading.Thread(target=create, args=(w,)) for w in range(8)]
            for t in workers:
                t.start()
            for t in workers:
                t.join()
            states = [self.wisp.wait_state(fid, timeout=90)["state"] for fid in ids]
        finally:
            stop.set()
            sampler.join()
        self.assertEqual(states, ["ready"] * len(ids))
        self.assertLessEqual(most[0], CAP, f"{most[0]} sandboxes at once, cap {CAP}")
        # Every deployed function still answers: a call waits for room, evicting idle ones.
        for fid in ids[:5]:
            self.invoke_ok(fid, {"n": 1})
        self.assertLessEqual(self.wisp.health()["instances"], CAP)


class DeleteRaceTest(WispTestCase):
    server_env = {"WISP_PREWARM_NODE_INSTANCES": "0", "WISP_PREWARM_PYTHON_INSTANCES": "0"}

    def code_trees(self):
        """The code store's trees (named by their hash) in the data dir."""
        code_dir = os.path.join(self.wisp.data_dir, "code")
        return [n for n in os.listdir(code_dir) if len(n) == 64]

    def live_functions(self):
        return len(self.wisp.request("GET", "/v1/functions").json["items"])

    def test_deleting_a_function_while_it_builds_leaves_nothing(self):
        if not os.path.exists("/usr/bin/go"):
            self.skipTest("no Go toolchain (golang-go) on this machine")
        doomed = self.wisp.create(name="doomed-go", runtime="go", code=GO_MAIN)
        # Delete while the build runs (a first build in a fresh data dir compiles part of the
        # standard library: seconds), so the deploy resumes after the function is gone.
        time.sleep(0.5)
        r = self.wisp.request("DELETE", f"/v1/functions/{doomed}")
        self.assertEqual(r.status, 200, r)
        # A function created after the delete, with the same code, is ready once the Go cache
        # holds what the first build compiled: the deleted function's deploy has moved past
        # its build by then.
        survivor = self.wisp.create(name="survivor-go", runtime="go", code=GO_MAIN)
        self.assertEqual(self.wisp.wait_state(survivor, timeout=240)["state"], "ready")
        # A deleted function's tree goes once its last deployment is let go: when the scheduler's
        # maintenance (every few seconds) drops its ended instances.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            leftover = len(self.code_trees()) > self.live_functions()
            instances = self.wisp.health()["instances"]
            if not leftover and instances <= 1:
                break
            time.sleep(0.1)
        self.assertLessEqual(len(self.code_trees()), self.live_functions(),
                             "the deleted function's code is still on disk")
        self.assertLessEqual(self.wisp.health()["instances"], 1,
                             "an instance of the deleted function is alive")
        self.assertEqual(self.wisp.request("GET", f"/v1/functions/{doomed}").status, 404)

    def test_deleting_a_function_while_an_update_writes_its_code_leaves_nothing(self):
        # Writing a large version's code takes milliseconds on the worker pool: deletes sent at
        # staggered moments land before, during and after that write.
        padding = "#" + "x" * (4 << 20) + "\n"
        deleted = []
        for round_ in range(10):
            fid = self.deploy(PY_ECHO, runtime="python")
            result = {}

            def update():
                client = self.wisp.client()
                try:
                    result["r"] = client.request("PUT", f"/v1/functions/{fid}",
                                                 {"code": padding + PY_ECHO})
                finally:
                    client.close()

            t = threading.Thread(target=update)
            t.start()
            time.sleep(0.004 * round_)
            r = self.wisp.request("DELETE", f"/v1/functions/{fid}")
            self.assertEqual(r.status, 200, r)
            t.join()
            self.assertIn(result["r"].status, (200, 404), result["r"])
            deleted.append(fid)
        deadline = time.monotonic() + 30  # trees go at the scheduler's maintenance, as above
        while time.monotonic() < deadline:
            if self.wisp.health()["instances"] == 0 and \
                    len(self.code_trees()) <= self.live_functions():
                break
            time.sleep(0.1)
        self.assertEqual(self.wisp.health()["instances"], 0,
                         "instances of deleted functions are alive")
        # Each function left holds one tree at most; the deleted ones' (their first versions
        # and the large updates) are collected.
        self.assertLessEqual(len(self.code_trees()), self.live_functions(), self.code_trees())


if __name__ == "__main__":
    unittest.main()
