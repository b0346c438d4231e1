"""Several calls per instance (a function's instance_concurrency) end to end: the field on the API,
N concurrent calls on ceil(N/K) instances, each call's own logs and result over 1,000 calls in
Node and Python, what a timeout and a crash do to the other calls in flight, and 10,000 calls
that leak nothing."""

import math
import os
import threading
import time
import unittest

from wisp_fixture import WispServer, WispTestCase

NO_PREWARM = {"WISP_PREWARM_NODE_INSTANCES": "0", "WISP_PREWARM_PYTHON_INSTANCES": "0"}

# Every call logs its token twice, with a pause between in which other calls run, and returns it
# with the id its instance drew when it loaded.
NODE_TOKENS = """
const instance = require('crypto').randomUUID();
exports.handler = async (event) => {
  console.log(`token=${event.token} first`);
  await new Promise((resolve) => setTimeout(resolve, event.pause_ms || 0));
  console.error(`token=${event.token} second`);
  return { token: event.token, instance };
};
"""
PY_TOKENS = """
import os, time
def handler(event, context):
    print("token=%s first" % event["token"])
    time.sleep(event.get("pause_ms", 0) / 1000.0)
    print("token=%s second" % event["token"], flush=True)
    return {"token": event["token"], "pid": os.getpid()}
"""
PY_SLEEPY = """
import os, subprocess, time
def handler(event, context):
    if event.get("subprocess"):
        subprocess.run(["true"], check=True)
    if event.get("crash"):
        time.sleep(0.05)
        os._exit(3)
    time.sleep(event.get("sleep_ms", 0) / 1000.0)
    return {"ok": True}
"""
NODE_SLEEPY = """
exports.handler = async (event) => {
  if (event.hang) await new Promise(() => {});
  if (event.crash) setTimeout(() => process.exit(3), 50);
  await new Promise((resolve) => setTimeout(resolve, event.sleep_ms || 0));
  return { ok: true };
};
"""


def wait_until(predicate, timeout=20, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class InstanceConcurrencyFieldTest(WispTestCase):
    server_env = NO_PREWARM

    def test_the_field_is_validated_stored_and_shown(self):
        fid = self.wisp.create(name=self.unique_name(), runtime="node", code=NODE_TOKENS,
                               instance_concurrency=8)
        self.assertEqual(self.wisp.wait_state(fid)["state"], "ready")
        self.assertEqual(self.wisp.function(fid)["instance_concurrency"], 8)
        r = self.wisp.request("PUT", f"/v1/functions/{fid}", {"instance_concurrency": 2})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.wisp.wait_state(fid)["instance_concurrency"], 2)
        plain = self.wisp.create(name=self.unique_name(), runtime="node", code=NODE_TOKENS)
        self.assertEqual(self.wisp.function(plain)["instance_concurrency"], 1)
        for bad, words in ((0, "between 1 and"), (65, "max_instance_concurrency"),
                           ("8", "integer")):
            r = self.wisp.request("POST", "/v1/functions",
                                  {"name": self.unique_name(), "runtime": "node",
                                   "code": NODE_TOKENS, "instance_concurrency": bad})
            self.assertEqual(r.status, 400, r)
            self.assertIn("instance_concurrency", r.body.decode())
            self.assertIn(words, r.body.decode())
        r = self.wisp.request("POST", "/v1/functions",
                              {"name": self.unique_name(), "runtime": "node", "style": "program",
                               "code": "console.log('{}')", "instance_concurrency": 2})
        self.assertEqual(r.status, 400, r)


class PairingChecks:
    """Each call's own logs and result, over 1,000 calls at 8 at a time on instances of 8."""

    def check_pairings(self, runtime, code, calls=1000, threads=8):
        fid = self.wisp.create(name=self.unique_name(), runtime=runtime, code=code,
                               instance_concurrency=8, max_concurrency=100)
        self.assertEqual(self.wisp.wait_state(fid)["state"], "ready")
        failures = []

        def run(worker):
            client = self.wisp.client()
            try:
                for i in range(worker, calls, threads):
                    token = f"{runtime}-{i}-{os.urandom(4).hex()}"
                    r = self.wisp.invoke(fid, {"token": token, "pause_ms": i % 7}, client=client)
                    if r.status != 200 or r.json["status"] != "success":
                        failures.append(f"call {i}: {r!r}")
                        continue
                    if r.json["response"]["token"] != token:
                        failures.append(f"call {i}: result {r.json['response']} for {token}")
                    logs = [line for line in r.json["logs"] if "token=" in line]
                    if logs != [f"token={token} first", f"token={token} second"]:
                        failures.append(f"call {i}: logs {r.json['logs']} for {token}")
            finally:
                client.close()

        workers = [threading.Thread(target=run, args=(w,)) for w in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        self.assertEqual(failures, [], failures[:5])

    def test_logs_and_results_never_cross_node(self):
        self.check_pairings("node", NODE_TOKENS)

    def test_logs_and_results_never_cross_python(self):
        self.check_pairings("python", PY_TOKENS)


class PrewarmedPairingTest(PairingChecks, WispTestCase):
    """The default prewarm pools: the instances are generic ones specialised, which learn their
    concurrency only then."""


class SharedInstancesTest(PairingChecks, WispTestCase):
    server_env = NO_PREWARM

    def test_n_concurrent_calls_run_on_ceil_n_over_k_instances(self):
        k, n = 4, 10
        fid = self.wisp.create(name=self.unique_name(), runtime="node", code=NODE_TOKENS,
                               instance_concurrency=k, max_concurrency=100)
        self.wisp.wait_state(fid)
        # Long enough that every call is in flight before the first ends.
        events = [{"token": f"t{i}", "pause_ms": 3000} for i in range(n)]
        results = self.wisp.invoke_concurrently(fid, events)
        instances = set()
        for i, r in enumerate(results):
            self.assertNotIsInstance(r, Exception)
            self.assertEqual(r.json["status"], "success", r)
            self.assertEqual(r.json["response"]["token"], f"t{i}")
            instances.add(r.json["response"]["instance"])
        self.assertEqual(len(instances), math.ceil(n / k), instances)

    def test_a_timeout_ends_that_call_and_drains_its_instance(self):
        fid = self.wisp.create(name=self.unique_name(), runtime="node", code=NODE_SLEEPY,
                               instance_concurrency=4, timeout_seconds=3)
        self.wisp.wait_state(fid)
        [hung_instance] = [i["id"] for i in self.wisp.function(fid)["instances"]]
        hung, hung_result = self.wisp.invoke_in_background(fid, {"hang": True})
        time.sleep(0.5)  # not an assertion: only so that the hung call is likely first
        neighbour, neighbour_result = self.wisp.invoke_in_background(fid, {"sleep_ms": 2800})
        hung.join()
        neighbour.join()
        r = hung_result["r"]
        self.assertEqual(r.json["status"], "timeout", r)
        self.assertIn("Task timed out after 3.00 seconds", r.json["response"]["errorMessage"])
        # Its neighbour ran to its own end, on the same instance or another.
        self.assertEqual(neighbour_result["r"].json["status"], "success", neighbour_result["r"])
        after = self.wisp.invoke(fid, {})
        self.assertEqual(after.json["status"], "success", after)
        wait_until(lambda: hung_instance not in
                   {i["id"] for i in self.wisp.function(fid)["instances"]},
                   what="the timed-out instance to be retired")

    def test_a_crash_fails_the_calls_in_flight_on_its_instance_only(self):
        fid = self.wisp.create(name=self.unique_name(), runtime="node", code=NODE_SLEEPY,
                               instance_concurrency=4, timeout_seconds=30)
        other = self.wisp.create(name=self.unique_name(), runtime="node", code=NODE_SLEEPY,
                                 instance_concurrency=4, timeout_seconds=30)
        self.wisp.wait_state(fid)
        self.wisp.wait_state(other)
        bystander, bystander_result = self.wisp.invoke_in_background(other, {"sleep_ms": 3000})
        sleepers = [self.wisp.invoke_in_background(fid, {"sleep_ms": 3000}) for _ in range(2)]
        time.sleep(0.5)  # not an assertion: only so that the sleepers are in flight
        crash = self.wisp.invoke(fid, {"crash": True, "sleep_ms": 3000})
        self.assertEqual(crash.json["status"], "error", crash)
        self.assertIn("exited with code 3", crash.json["response"]["errorMessage"])
        self.assertIn("3 calls were in flight on its instance",
                      crash.json["response"]["errorMessage"])
        for thread, result in sleepers:
            thread.join()
            r = result["r"]
            self.assertEqual(r.json["status"], "error", r)
            self.assertEqual(r.json["response"], crash.json["response"])
        bystander.join()
        self.assertEqual(bystander_result["r"].json["status"], "success", bystander_result["r"])
        self.assertEqual(self.wisp.invoke(fid, {}).json["status"], "success")

    def test_a_python_process_that_dies_fails_the_calls_of_its_instance(self):
        fid = self.wisp.create(name=self.unique_name(), runtime="python", code=PY_SLEEPY,
                               instance_concurrency=4, timeout_seconds=30)
        self.wisp.wait_state(fid)
        # A handler's own subprocess ending is no process of the instance ending.
        r = self.wisp.invoke(fid, {"subprocess": True})
        self.assertEqual(r.json["status"], "success", r)
        sleepers = [self.wisp.invoke_in_background(fid, {"sleep_ms": 3000}) for _ in range(2)]
        time.sleep(0.5)  # not an assertion: only so that the sleepers are in flight
        crash = self.wisp.invoke(fid, {"crash": True})
        self.assertEqual(crash.json["status"], "error", crash)
        self.assertIn("calls were in flight on its instance", crash.json["response"]["errorMessage"])
        for thread, result in sleepers:
            thread.join()
            self.assertEqual(result["r"].json["status"], "error", result["r"])
        self.assertEqual(self.wisp.invoke(fid, {}).json["status"], "success")


class ConcurrencyLeakTest(unittest.TestCase):
    def test_ten_thousand_calls_at_concurrency_eight_leak_nothing(self):
        wisp = WispServer(env=NO_PREWARM)

        def stop():
            try:
                wisp.stop()
            finally:
                wisp.kill()
                wisp.cleanup()
        self.addCleanup(stop)
        wisp.start()
        fid = wisp.create(name="leak-shared", runtime="node", code=NODE_TOKENS,
                          instance_concurrency=8)
        wisp.wait_state(fid)

        clients = [wisp.client() for _ in range(8)]

        def token(i):
            return {"token": str(i)}

        # Warm first: as many instances and connections as the load needs.
        failures = wisp.invoke_from_clients(fid, clients, 125, token)
        fds0, rss0, _ = wisp.resources()
        failures += wisp.invoke_from_clients(fid, clients, 1250, token)
        self.assertEqual(failures, [], failures[:3])
        fds1, rss1, instances1 = wisp.resources()
        self.assertLessEqual(fds1, fds0 + 8,
                             f"wispd's open files grew: {os.listdir(f'/proc/{wisp.proc.pid}/fd')}")
        # Eight calls at a time fit one instance; a second may start for a call that arrived
        # while the first was full for a moment.
        self.assertLessEqual(instances1, 2)
        self.assertLess(rss1 - rss0, 64 * 1024, f"wispd's RSS grew from {rss0} to {rss1} KiB")
        for c in clients:
            c.close()


if __name__ == "__main__":
    unittest.main()
