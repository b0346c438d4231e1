"""End-to-end: schedules (rate and cron expressions with a time zone) fire async invocations on
the durable queue. wispd runs with the test knob `schedule_test_clock_start`: the schedules'
clock stands still until POST /v1/test/schedule-clock moves it, and that route answers after
the pass that follows the move, so every assertion is about order, not timing. Covered: the
Scheduled Event and payloads, validation (400 naming the expression), the missed-firing
policy across restarts (the newest missed slot within the catch-up window fires once, older
ones are skipped), and two wispd on one store file firing each slot once."""

import os
import shutil
import tempfile
import threading
import time
import unittest

from wisp_fixture import SharedStoreTestCase, WispServer

ECHO = '''
def handler(event, context):
    return {"echo": event}
'''

# 2030-01-01T00:00:30Z: thirty seconds past a minute, so the first slots are easy to name.
CLOCK_START = 1893456030


def clock_env(start=CLOCK_START, window=600):
    return {"WISP_SCHEDULE_TEST_CLOCK_START": str(start),
            "WISP_SCHEDULE_CATCH_UP_SECONDS": str(window)}


def advance(server, seconds):
    r = server.request("POST", "/v1/test/schedule-clock", {"advance_seconds": seconds})
    if r.status != 200:
        raise AssertionError(f"advance failed: {r!r}")
    return r.json


def invocations(server, fid):
    r = server.request("GET", f"/v1/invocations?function_id={fid}&type=async&limit=100")
    if r.status != 200:
        raise AssertionError(f"list failed: {r!r}")
    return r.json["items"]


def wait_done(server, iid, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        item = server.request("GET", f"/v1/invocations/{iid}").json["item"]
        if item["status"] not in ("queued", "running") or time.monotonic() > deadline:
            return item
        time.sleep(0.1)


def create_scheduled(server, name, schedules):
    fid = server.create(name=name, runtime="python", code=ECHO, schedules=schedules)
    server.wait_state(fid, timeout=60)
    return fid


class ScheduleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.wisp = WispServer(env=clock_env())
        cls.wisp.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.wisp.stop()
        finally:
            cls.wisp.kill()
            cls.wisp.cleanup()

    def tearDown(self):
        for item in self.wisp.request("GET", "/v1/functions").json["items"]:
            self.wisp.request("DELETE", f"/v1/functions/{item['id']}")

    def test_bad_schedules_are_refused_naming_the_expression(self):
        cases = [
            ([{"expression": "rate(5 fortnights)"}], 'schedule expression "rate(5 fortnights)"'),
            ([{"expression": "cron(0 12 * * MON *)"}], "exactly one of day-of-month"),
            ([{"expression": "0 61 * * *"}], 'hours "61"'),
            ([{"expression": "0 0 * * *", "timezone": "Mars/Olympus"}],
             'unknown time zone "Mars/Olympus"'),
            ([{"name": "a", "expression": "@daily"}, {"name": "a", "expression": "@hourly"}],
             'the name "a" is used twice'),
            ({"expression": "@daily"}, "must be an array"),
        ]
        for schedules, words in cases:
            r = self.wisp.request("POST", "/v1/functions",
                                  {"name": "bad-schedule", "runtime": "python", "code": ECHO,
                                   "schedules": schedules})
            self.assertEqual(r.status, 400, r)
            self.assertIn(words, r.json["error"])
        fid = create_scheduled(self.wisp, "good-schedule", [])
        r = self.wisp.request("PUT", f"/v1/functions/{fid}/schedules",
                              [{"expression": "cron(0 25 * * ? *)"}])
        self.assertEqual(r.status, 400, r)
        self.assertIn('"cron(0 25 * * ? *)"', r.json["error"])
        self.assertEqual(self.wisp.request("GET", f"/v1/functions/{fid}/schedules")
                         .json["schedules"], [])

    def test_firings_land_on_the_queue_as_scheduled_events(self):
        fid = create_scheduled(self.wisp, "every-minute",
                               [{"name": "tick", "expression": "rate(1 minute)"}])
        item = self.wisp.function(fid)
        self.assertEqual(item["schedules"], [{"name": "tick", "expression": "rate(1 minute)",
                                              "timezone": "UTC", "enabled": True}])
        start = advance(self.wisp, 0)  # arms the new schedule at the clock's time
        self.assertEqual(invocations(self.wisp, fid), [])
        listed = self.wisp.request("GET", f"/v1/functions/{fid}/schedules").json["schedules"]
        self.assertEqual(len(listed), 1)
        self.assertTrue(listed[0]["next_at"].endswith(":00.000Z"), listed)

        report = advance(self.wisp, 60)
        self.assertEqual(report["fired"], 1, report)
        done = wait_done(self.wisp, report["invocation_ids"][0])
        self.assertEqual(done["status"], "success", done)
        self.assertEqual(done["function_id"], fid)
        event = done["response"]["echo"]
        self.assertEqual(event["detail-type"], "Scheduled Event")
        self.assertEqual(event["source"], "aws.events")
        self.assertTrue(event["resources"][0].endswith(":rule/every-minute-tick"), event)
        self.assertTrue(event["time"].endswith(":00Z"), event)
        self.assertLess(event["time"], report["now"])
        self.assertLess(start["now"], event["time"] + ".000Z")

        # Five slots passed at once (the node fell behind): only the newest fires.
        later = advance(self.wisp, 300)
        self.assertEqual(later["fired"], 1, later)
        newest = wait_done(self.wisp, later["invocation_ids"][0])
        self.assertEqual(newest["event"]["time"][:16], later["now"][:16])
        self.assertEqual(len(invocations(self.wisp, fid)), 2)

    def test_payloads_disabled_schedules_and_time_zones(self):
        fid = create_scheduled(self.wisp, "with-payload", [
            {"name": "job", "expression": "cron(* * * * ? *)", "timezone": "Asia/Kolkata",
             "payload": {"job": "report", "n": [1, 2]}},
            {"name": "off", "expression": "* * * * *", "enabled": False},
        ])
        advance(self.wisp, 0)
        report = advance(self.wisp, 60)
        self.assertEqual(report["fired"], 1, report)
        done = wait_done(self.wisp, report["invocation_ids"][0])
        self.assertEqual(done["event"], {"job": "report", "n": [1, 2]})
        self.assertEqual(done["response"]["echo"], {"job": "report", "n": [1, 2]})
        # Enabled now: it starts from the next slot, it does not catch up on the disabled time.
        r = self.wisp.request("PUT", f"/v1/functions/{fid}/schedules", {"schedules": [
            {"name": "off", "expression": "* * * * *"}]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual([s["name"] for s in r.json["schedules"]], ["off"])
        self.assertEqual(advance(self.wisp, 0)["fired"], 0)
        report = advance(self.wisp, 60)
        self.assertEqual(report["fired"], 1, report)
        self.assertEqual(wait_done(self.wisp, report["invocation_ids"][0])["event"]["detail-type"],
                         "Scheduled Event")
        # Removed: nothing more fires.
        r = self.wisp.request("PUT", f"/v1/functions/{fid}", {"schedules": []})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(advance(self.wisp, 120)["fired"], 0)
        self.assertEqual(len(invocations(self.wisp, fid)), 2)


class MissedFiringsTest(unittest.TestCase):
    """The policy for slots missed while wispd was down: the newest missed slot fires once at
    start if it is within the catch-up window (here 600 s); older missed slots are skipped."""

    def setUp(self):
        self.data_dir = tempfile.mkdtemp(prefix="wisp-e2e-sched-")
        self.server = None

    def tearDown(self):
        if self.server:
            try:
                self.server.stop()
            finally:
                self.server.kill()
        shutil.rmtree(self.data_dir, True)

    def run_at(self, start):
        if self.server:
            self.server.stop()
        self.server = WispServer(data_dir=self.data_dir, env=clock_env(start))
        self.server.start()
        advance(self.server, 0)  # returns after a whole pass at the start time
        return self.server

    def event_times(self, fid):
        return sorted(i["event"]["time"] for i in invocations(self.server, fid))

    def test_newest_missed_slot_within_the_window_fires_once_older_ones_are_skipped(self):
        server = self.run_at(CLOCK_START)  # 00:00:30
        every10 = create_scheduled(server, "every-ten", [{"expression": "rate(10 minutes)"}])
        hourly = create_scheduled(server, "hourly", [{"expression": "cron(0 * * * ? *)"}])
        advance(server, 0)
        # Down from 00:00:30 to 00:35:30: 00:10, 00:20 and 00:30 were missed; 00:30 is 5.5
        # minutes old and fires, once.
        server = self.run_at(CLOCK_START + 35 * 60)
        self.assertEqual(self.event_times(every10), ["2030-01-01T00:30:00Z"])
        self.assertEqual(self.event_times(hourly), [])
        # Down until 02:30:30: the hourly one's 01:00 and 02:00 are older than the window and
        # skipped; the rate's 02:30 fires.
        server = self.run_at(CLOCK_START + 150 * 60)
        self.assertEqual(self.event_times(every10),
                         ["2030-01-01T00:30:00Z", "2030-01-01T02:30:00Z"])
        self.assertEqual(self.event_times(hourly), [])
        # And it goes on from its next slot.
        report = advance(server, 30 * 60)
        self.assertEqual(self.event_times(hourly), ["2030-01-01T03:00:00Z"])
        self.assertEqual(report["fired"], 2, report)  # and the rate's 03:00
        for iid in report["invocation_ids"]:
            self.assertEqual(wait_done(server, iid)["status"], "success")


class TwoNodesTest(SharedStoreTestCase):
    """Two wispd, each with a data dir (and queue) of its own, on one store file, with the same
    test clock: each slot fires on one of them."""

    store_env = clock_env()

    def test_each_slot_fires_on_one_node(self):
        fid = create_scheduled(self.a, "shared-tick", [{"expression": "rate(1 minute)"}])
        deadline = time.monotonic() + 30
        while self.b.request("GET", f"/v1/functions/{fid}/schedules").status != 200:
            self.assertLess(time.monotonic(), deadline, "node b never saw the function")
            time.sleep(0.1)
        advance(self.a, 0)
        advance(self.b, 0)
        for round_number in range(1, 4):
            reports = {}
            barrier = threading.Barrier(2)

            def move(server, label):
                barrier.wait()
                reports[label] = advance(server, 60)

            threads = [threading.Thread(target=move, args=(s, l))
                       for s, l in ((self.a, "a"), (self.b, "b"))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(reports["a"]["fired"] + reports["b"]["fired"], 1, reports)
            # The other node lost the race, or read the store after the winner moved it.
            self.assertLessEqual(reports["a"]["lost"] + reports["b"]["lost"], 1, reports)
            queued = len(invocations(self.a, fid)) + len(invocations(self.b, fid))
            self.assertEqual(queued, round_number)


if __name__ == "__main__":
    unittest.main()
