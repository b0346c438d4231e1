"""End-to-end: asynchronous invocations on the durable queue (/v1): accept, records, retries
with their gaps, dead letters and requeue, concurrency limits and maximum event age
(hostile-functions cases 23 and 24), and the caller's trace id on every attempt. The kill -9
case (25) is in test_async_durability.py."""

import datetime
import threading
import time
import unittest

from async_support import Wispd, WispdTestCase

FAILING = '''
def handler(event, context):
    print("attempt for", context.aws_request_id)
    raise ValueError("always fails")
'''

ECHO = '''
import time
def handler(event, context):
    if event.get("sleep"):
        time.sleep(event["sleep"])
    print("request", context.aws_request_id)
    return {"echo": event, "request_id": context.aws_request_id}
'''

TRACE = '''
import os
def handler(event, context):
    return os.environ.get('_X_AMZN_TRACE_ID')
'''


def ts(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


class AsyncInvokeTest(WispdTestCase):
    def test_accept_by_header_and_by_body_then_records(self):
        fid = self.wisp.create_function(name="async-echo", runtime="python", code=ECHO)
        a = self.wisp.invoke_async(fid, {"n": 1}, header=True)
        b = self.wisp.invoke_async(fid, {"n": 2}, header=False)
        self.assertNotEqual(a, b)
        first = self.wisp.wait_invocation(a)
        second = self.wisp.wait_invocation(b)
        for item, n in ((first, 1), (second, 2)):
            self.assertEqual(item["status"], "success")
            self.assertEqual(item["attempts"], 1)
            self.assertEqual(item["event"], {"n": n})
            self.assertEqual(item["function_id"], fid)
            # The invocation id is the request id the function saw.
            self.assertEqual(item["response"]["request_id"], item["id"])
            self.assertIn(f"request {item['id']}", item["logs"])
            for key in ("created_at", "started_at", "finished_at"):
                self.assertTrue(item[key].endswith("Z"), item)
            self.assertIsNone(item["next_attempt_at"])
            self.assertIsNone(item["error"])
            self.assertGreaterEqual(item["duration_ms"], 0)

        listed = self.wisp.request("GET", f"/v1/invocations?function_id={fid}").json["items"]
        self.assertEqual({i["id"] for i in listed}, {a, b})
        self.assertEqual(listed[0]["id"], b)  # newest first
        page = self.wisp.request("GET", f"/v1/invocations?function_id={fid}&limit=1&offset=1")
        self.assertEqual([i["id"] for i in page.json["items"]], [a])
        ok = self.wisp.request("GET", f"/v1/invocations?function_id={fid}&status=success")
        self.assertEqual(len(ok.json["items"]), 2)
        none = self.wisp.request("GET", f"/v1/invocations?function_id={fid}&status=queued")
        self.assertEqual(none.json["items"], [])

        # Every attempt is also an invocation record of the function, with its peak memory.
        deadline = time.monotonic() + 5
        while True:
            records = self.wisp.request("GET", f"/v1/functions/{fid}/logs").json["items"]
            if {r["request_id"] for r in records} >= {a, b} or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        used = {r["request_id"]: r["memory_used_mb"] for r in records}
        for iid in (a, b):
            self.assertGreater(used.get(iid) or 0, 0, records)

        # A sync call still works and is not queued.
        sync = self.wisp.request("POST", f"/v1/functions/{fid}/invoke", {"event": {"s": 1}})
        self.assertEqual(sync.status, 200, sync)
        self.assertEqual(sync.json["response"]["echo"], {"s": 1})
        explicit = self.wisp.request("POST", f"/v1/functions/{fid}/invoke", {"x": 1},
                                     {"X-Invocation-Type": "RequestResponse"})
        self.assertEqual(explicit.status, 200, explicit)

    def test_caller_trace_id_reaches_every_attempt(self):
        # As for a sync call, the caller's X-Amzn-Trace-Id reaches the function as
        # _X_AMZN_TRACE_ID, kept in the queue with the event; a call without one sees none.
        trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
        fid = self.wisp.create_function(name="async-trace", runtime="python", code=TRACE)
        path = f"/v1/functions/{fid}/invoke"
        by_header = self.wisp.request("POST", path, {"n": 1},
                                      {"X-Invocation-Type": "Event", "X-Amzn-Trace-Id": trace})
        by_body = self.wisp.request("POST", path, {"async": True, "event": {"n": 2}},
                                    {"X-Amzn-Trace-Id": trace})
        untraced = self.wisp.invoke_async(fid, {"n": 3})
        for reply in (by_header, by_body):
            self.assertEqual(reply.status, 202, reply)
            item = self.wisp.wait_invocation(reply.json["invocation_id"])
            self.assertEqual(item["response"], trace, item)
        self.assertIsNone(self.wisp.wait_invocation(untraced)["response"])

    def test_bad_requests(self):
        w = self.wisp
        self.assertEqual(w.request("GET", "/v1/invocations/no-such-id").status, 404)
        self.assertEqual(w.request("GET", "/v1/invocations?status=done").status, 400)
        self.assertEqual(w.request("GET", "/v1/invocations?limit=0").status, 400)
        self.assertEqual(w.request("GET", "/v1/invocations?offset=-1").status, 400)
        r = w.request("POST", "/v1/functions/nope/invoke", {"a": 1}, {"X-Invocation-Type": "Event"})
        self.assertEqual(r.status, 404, r)
        self.assertEqual(w.request("POST", "/v1/dead-letters/nope/requeue").status, 404)
        fid = w.create_function(name="async-bad", runtime="python", code=ECHO)
        r = w.request("POST", f"/v1/functions/{fid}/invoke", b'{"async": true, ',
                      {"X-Invocation-Type": "Event"})
        self.assertEqual(r.status, 400, r)

    def test_function_fields(self):
        w = self.wisp
        fid = w.create_function(name="fields", runtime="python", code=ECHO)
        item = w.request("GET", f"/v1/functions/{fid}").json["item"]
        self.assertEqual((item["max_retries"], item["retry_delay_seconds"],
                          item["max_event_age_seconds"], item["max_concurrency"],
                          item["min_instances"], item["metadata"]), (2, 60, 21600, 100, 0, {}))
        r = w.request("PUT", f"/v1/functions/{fid}", {
            "max_retries": 5, "retry_delay_seconds": 0, "max_event_age_seconds": 120,
            "max_concurrency": 3, "min_instances": 1, "metadata": {"team": "a", "n": [1]},
            "version": "2.1.0"})
        self.assertEqual(r.status, 200, r)
        item = r.json["item"]
        self.assertEqual((item["max_retries"], item["retry_delay_seconds"],
                          item["max_event_age_seconds"], item["max_concurrency"],
                          item["min_instances"], item["metadata"], item["version_label"]),
                         (5, 0, 120, 3, 1, {"team": "a", "n": [1]}, "2.1.0"))
        self.assertIsInstance(item["version"], int)
        for bad in ({"max_retries": 11}, {"max_retries": -1}, {"retry_delay_seconds": -1},
                    {"max_event_age_seconds": 0}, {"max_concurrency": 0},
                    {"metadata": [1]}, {"max_retries": "2"}, {"min_instances": 4}):
            r = w.request("PUT", f"/v1/functions/{fid}", bad)
            self.assertEqual(r.status, 400, (bad, r))
        r = w.request("POST", "/v1/functions", {"name": "f2", "runtime": "python", "code": ECHO,
                                                "max_retries": 99})
        self.assertEqual(r.status, 400, r)
        self.assertIn("max_retries", r.json["error"])

    def test_failing_function_retries_with_doubling_gaps_then_dead_letters(self):
        # Case 23: exactly 1 + N attempts with the configured gaps, then a dead letter that
        # says why.
        w = self.wisp
        fid = w.create_function(name="always-fails", runtime="python", code=FAILING,
                                max_retries=2, retry_delay_seconds=1)
        iid = w.invoke_async(fid, {"k": "v"})
        item = w.wait_invocation(iid, statuses=("dead_letter",), timeout=60)
        self.assertEqual(item["attempts"], 3)
        attempts = [h for h in item["history"] if h["status"] == "error"]
        self.assertEqual(len(attempts), 3, item["history"])
        gaps = [ts(attempts[i + 1]["started_at"]) - ts(attempts[i]["finished_at"])
                for i in range(2)]
        self.assertGreaterEqual(gaps[0], 0.95, gaps)
        self.assertLess(gaps[0], 2.5, gaps)
        self.assertGreaterEqual(gaps[1], 1.95, gaps)
        self.assertLess(gaps[1], 3.5, gaps)
        self.assertIn("always fails", item["error"])
        self.assertIn("3 attempts failed", item["dead_letter_reason"])
        self.assertEqual(item["response"]["errorType"], "ValueError")
        self.assertIn(f"attempt for {iid}", item["logs"])  # the same id on every attempt

        dead = w.request("GET", f"/v1/dead-letters?function_id={fid}").json["items"]
        self.assertEqual([d["id"] for d in dead], [iid])
        self.assertIn("always fails", dead[0]["dead_letter_reason"])
        time.sleep(1.5)
        self.assertEqual(w.invocation(iid)["attempts"], 3, "no attempt after the dead letter")

        # Fix the function, requeue: it runs again under the same id and succeeds.
        r = w.request("PUT", f"/v1/functions/{fid}", {"code": ECHO})
        self.assertEqual(r.status, 200, r)
        r = w.request("POST", f"/v1/dead-letters/{iid}/requeue")
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json["status"], "queued")
        item = w.wait_invocation(iid, statuses=("success",))
        self.assertEqual(item["attempts"], 1)
        self.assertEqual(item["response"]["request_id"], iid)
        self.assertEqual(w.request("GET", f"/v1/dead-letters?function_id={fid}").json["items"], [])
        # Only dead letters can be requeued.
        self.assertEqual(w.request("POST", f"/v1/invocations/{iid}/requeue").status, 409)

    def test_timeout_counts_as_a_failed_attempt(self):
        w = self.wisp
        fid = w.create_function(name="slow", runtime="python", code=ECHO, timeout_seconds=1,
                                max_retries=1, retry_delay_seconds=0)
        iid = w.invoke_async(fid, {"sleep": 5})
        item = w.wait_invocation(iid, statuses=("dead_letter",), timeout=60)
        self.assertEqual([h["status"] for h in item["history"]], ["timeout", "timeout"])
        self.assertEqual(item["attempts"], 2)

    def test_burst_beyond_concurrency_waits_in_the_queue(self):
        # Case 24: a burst beyond the function's concurrency waits; nothing is dropped, and no
        # more than max_concurrency attempts overlap.
        w = self.wisp
        fid = w.create_function(name="one-at-a-time", runtime="python", code=ECHO,
                                max_concurrency=1)
        ids = [w.invoke_async(fid, {"sleep": 0.2, "i": i}) for i in range(12)]
        items = [w.wait_invocation(i, statuses=("success",), timeout=90) for i in ids]
        spans = sorted((ts(i["started_at"]), ts(i["finished_at"])) for i in items)
        for (s1, e1), (s2, e2) in zip(spans, spans[1:]):
            self.assertGreaterEqual(s2, e1 - 0.002, spans)
        self.assertTrue(all(i["attempts"] == 1 for i in items))

    def test_events_past_their_maximum_age_are_dead_lettered(self):
        w = self.wisp
        fid = w.create_function(name="aging", runtime="python", code=ECHO, max_concurrency=1,
                                max_event_age_seconds=1)
        first = w.invoke_async(fid, {"sleep": 2.5})
        time.sleep(0.3)
        later = [w.invoke_async(fid, {"i": i}) for i in range(3)]
        self.assertEqual(w.wait_invocation(first)["status"], "success")
        for iid in later:
            item = w.wait_invocation(iid, statuses=("dead_letter",))
            self.assertIn("maximum age", item["dead_letter_reason"])
            self.assertEqual(item["attempts"], 0)

    def test_concurrent_accepts(self):
        w = self.wisp
        fid = w.create_function(name="many", runtime="python", code=ECHO)
        accepted = []
        lock = threading.Lock()

        def submit(t):
            for i in range(25):
                iid = w.invoke_async(fid, {"t": t, "i": i})
                with lock:
                    accepted.append(iid)

        threads = [threading.Thread(target=submit, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len(set(accepted)), 200)
        w.wait_for(lambda: len(w.request(
            "GET", f"/v1/invocations?function_id={fid}&status=success&limit=1000").json["items"])
            == 200, timeout=120, what="200 successes")
        health = w.request("GET", "/health").json
        self.assertEqual(health["status"], "ok")
        self.assertGreaterEqual(health["asyncQueue"]["accepted"], 200)


class LeaseRenewalTest(unittest.TestCase):
    """A claim holds an invocation for async_lease_seconds unless wispd renews it (every third
    of it): an attempt that runs several leases long must still run once, not be taken back
    as if its worker had died."""

    LEASE_SECONDS = 0.6

    @classmethod
    def setUpClass(cls):
        cls.wisp = Wispd(env={"WISP_ASYNC_LEASE_SECONDS": str(cls.LEASE_SECONDS)}).start()

    @classmethod
    def tearDownClass(cls):
        cls.wisp.close()

    def test_an_attempt_longer_than_its_lease_runs_once(self):
        w = self.wisp
        fid = w.create_function(name="long-attempt", runtime="python", code=ECHO)
        iid = w.invoke_async(fid, {"sleep": 4 * self.LEASE_SECONDS})
        item = w.wait_invocation(iid, timeout=60)
        self.assertEqual(item["status"], "success", item)
        self.assertEqual(item["attempts"], 1, item)
        self.assertEqual([h["status"] for h in item["history"]], ["success"], item)
        self.assertNotIn("refused", w.log())

    def test_a_lease_that_is_not_positive_is_refused_at_start(self):
        for value in ("0", "-1"):
            with self.subTest(value=value):
                bad = Wispd(env={"WISP_ASYNC_LEASE_SECONDS": value})
                try:
                    with self.assertRaises(AssertionError) as failed:
                        bad.start(timeout=15)
                    self.assertIn("async_lease_seconds", str(failed.exception).lower())
                finally:
                    bad.close()


if __name__ == "__main__":
    unittest.main()
