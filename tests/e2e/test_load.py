"""Load through a real wispd: hot reload under continuous calls, concurrent instances, and
the concurrency limit."""

import threading
import time
import unittest

from wisp_fixture import WispTestCase


def versioned_code(v):
    return (f"const instance = Math.random();\n"
            f"exports.handler = async (e) => ({{v: {v}, instance}});\n")


class HotReloadTest(WispTestCase):

    def test_hot_reload_under_load(self):
        fid = self.deploy(versioned_code(1))
        self.invoke_ok(fid)

        lock = threading.Lock()
        # Every call: (monotonic start, monotonic end, status code, body status, v, version)
        calls = []
        failures = []
        stop = threading.Event()
        # The highest code version v whose PUT had returned, with the time it returned.
        put_returned = []  # (time, v)

        def worker():
            client = self.wisp.client(timeout=30)
            try:
                while not stop.is_set():
                    start = time.monotonic()
                    try:
                        r = self.wisp.invoke(fid, {"t": start}, client=client)
                    except Exception as e:  # noqa: BLE001 - a failed call is a finding
                        with lock:
                            failures.append(f"exception: {e!r}")
                        client.close()
                        continue
                    end = time.monotonic()
                    if r.status != 200 or r.json.get("status") != "success":
                        with lock:
                            failures.append(repr(r))
                        continue
                    with lock:
                        calls.append((start, end, r.json["response"]["v"],
                                      r.json["version"]))
            finally:
                client.close()

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.3)
            for v in (2, 3, 4):
                t0 = time.monotonic()
                r = self.wisp.request("PUT", f"/v1/functions/{fid}", {"code": versioned_code(v)})
                done = time.monotonic()
                self.assertEqual(r.status, 200, r)
                item = r.json["item"]
                self.assertEqual(item["version"], v,
                                 f"PUT of v{v} returned after {done - t0:.1f}s without the new "
                                 f"version: state {item['state']}, error {item.get('error')!r}, "
                                 f"{len(item['instances'])} instances")
                with lock:
                    put_returned.append((done, v))
                self.wisp.record_instances(fid)
                time.sleep(0.4)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)

        self.assertEqual(failures, [], f"{len(failures)} failed calls, first: {failures[:3]}")
        self.assertGreater(len(calls), 40, "too few calls to say anything")
        seen = {c[2] for c in calls}
        self.assertEqual(seen, {1, 2, 3, 4}, seen)
        for start, end, v, version in calls:
            self.assertEqual(v, version, "response code and reported version disagree")
            # A call that started after a PUT returned sees that version or newer.
            required = max([pv for (t, pv) in put_returned if t < start], default=1)
            self.assertGreaterEqual(v, required,
                                    f"call started {start:.3f} after the PUT of v{required} "
                                    f"returned, but was served by v{v}")
        final = self.invoke_ok(fid)
        self.assertEqual(final["response"]["v"], 4)
        # Old versions' instances retire.
        deadline = time.monotonic() + 5
        while True:
            instances = self.wisp.function(fid)["instances"]
            old = [(i["version"], i["state"], i["started_at"]) for i in instances
                   if i["version"] != 4]
            if not old or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(old, [], "instances of old versions were not retired")

    def test_python_hot_reload(self):
        fid = self.deploy("def handler(event):\n    return 1\n", runtime="python")
        self.assertEqual(self.invoke_ok(fid)["response"], 1)
        for v in (2, 3):
            r = self.wisp.request("PUT", f"/v1/functions/{fid}",
                                  {"code": f"def handler(event):\n    return {v}\n"})
            self.assertEqual(r.status, 200, r)
            self.assertEqual(self.invoke_ok(fid)["response"], v)


class ConcurrencyTest(WispTestCase):

    def run_concurrently(self, fid, n, event=None):
        return self.wisp.invoke_concurrently(fid, [event or {}] * n, timeout=30)

    def wait_all_idle(self, fid, at_least, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            instances = self.wisp.function(fid)["instances"]
            idle = [i for i in instances if i["state"] == "idle"]
            if len(idle) >= at_least and len(idle) == len(instances):
                return instances
            if time.monotonic() > deadline:
                self.fail(f"instances did not settle idle: {instances}")
            time.sleep(0.05)

    def test_eight_concurrent_calls_use_distinct_instances(self):
        fid = self.deploy("const instance = Math.random();\n"
                          "exports.handler = async () => { await new Promise("
                          "r => setTimeout(r, 300)); return instance; };")
        # Cold: eight sandboxes start at once on a small machine; a call may be served by an
        # instance another call freed first, but all succeed and they spread out.
        results = self.run_concurrently(fid, 8)
        for r in results:
            self.assertNotIsInstance(r, Exception)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["status"], "success", r)
        self.assertGreaterEqual(len({r.json["response"] for r in results}), 2)
        instances = self.wait_all_idle(fid, 8)

        # Warm: eight idle instances, eight concurrent calls: one instance each. (Eight distinct
        # instances already prove the calls overlapped: no timing bound on a noisy machine.)
        results = self.run_concurrently(fid, 8)
        for r in results:
            self.assertNotIsInstance(r, Exception)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["status"], "success", r)
        served = [r.json["response"] for r in results]
        self.assertEqual(len(set(served)), 8, f"one instance runs one call at a time: {served}")
        self.wisp.record_instances(fid)

    def test_python_concurrent(self):
        fid = self.deploy("import random, time\nINSTANCE = random.random()\n"
                          "def handler(event):\n    time.sleep(0.3)\n    return INSTANCE\n",
                          runtime="python")
        # Cold: a call may be served by an instance another call freed first (before the one it
        # was starting or claimed from the pool was ready); rounds of four calls at once go on
        # starting instances until four are there.
        for _ in range(5):
            results = self.run_concurrently(fid, 4)
            self.assertTrue(all(r.status == 200 and r.json["status"] == "success"
                                for r in results), results)
            if len(self.wait_all_idle(fid, 1)) >= 4:
                break
        self.wait_all_idle(fid, 4)
        results = self.run_concurrently(fid, 4)
        self.assertTrue(all(r.status == 200 and r.json["status"] == "success"
                            for r in results), results)
        self.assertEqual(len({r.json["response"] for r in results}), 4)
        self.wisp.record_instances(fid)


class ProvisioningTest(WispTestCase):
    """Calls one after another from two keep-alive clients never have more than two calls in
    flight, so a handful of instances serves them. (A limit of 20 instances bounds the damage
    when this fails.)"""

    server_env = {"WISP_MAX_INSTANCES_PER_FUNCTION": "20"}

    def test_sequential_clients_do_not_overprovision(self):
        fid = self.wisp.create(name="quick", runtime="node",
                               code="exports.handler = async () => 1;")
        self.wisp.wait_state(fid)
        errors = []

        def worker():
            client = self.wisp.client()
            end = time.monotonic() + 1.0
            try:
                while time.monotonic() < end:
                    r = self.wisp.invoke(fid, client=client)
                    if r.status != 200 or r.json["status"] != "success":
                        errors.append(r)
            finally:
                client.close()

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        self.assertEqual(errors, [])
        instances = self.wisp.function(fid)["instances"]
        states = {}
        for i in instances:
            states[i["state"]] = states.get(i["state"], 0) + 1
        self.assertLessEqual(len(instances), 4,
                             f"2 sequential clients made {len(instances)} instances: {states}")
        # Clean up whatever was started before the daemon stops.
        self.assertEqual(self.wisp.request("DELETE", f"/v1/functions/{fid}").status, 200)


class ConcurrencyLimitTest(WispTestCase):
    """A wispd with at most 2 instances per function and a short queue wait."""

    server_env = {"WISP_MAX_INSTANCES_PER_FUNCTION": "2", "WISP_QUEUE_WAIT_SECONDS": "0.5"}

    def test_429_over_limit_and_queueing(self):
        fid = self.wisp.create(name="limited", runtime="node",
                               code="exports.handler = async (e) => { await new Promise("
                                    "r => setTimeout(r, e.ms)); return 'ok'; };")
        self.assertEqual(self.wisp.wait_state(fid)["state"], "ready")

        def run(n, ms):
            return self.wisp.invoke_concurrently(fid, [{"ms": ms}] * n, timeout=30)

        # 4 calls of 1.5 s with 2 instances and a 0.5 s queue wait: 2 run, 2 get 429.
        results = run(4, 1500)
        statuses = sorted(r.status for r in results)
        self.assertEqual(statuses, [200, 200, 429, 429], results)
        for r in results:
            if r.status == 429:
                self.assertIsInstance(r.json.get("error"), str)
            else:
                self.assertEqual(r.json["status"], "success")
        self.wisp.record_instances(fid)

        # 3 calls of 100 ms: the third waits in the queue for a free instance and succeeds.
        results = run(3, 100)
        self.assertEqual([r.status for r in results], [200, 200, 200], results)
        self.assertLessEqual(len(self.wisp.function(fid)["instances"]), 2)
        health = self.wisp.health()
        self.assertEqual(health["status"], "ok")


if __name__ == "__main__":
    unittest.main()
