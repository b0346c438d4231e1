"""Retention of invocation records: wispd keeps the newest `invocation_records_per_function`
records of each function and deletes older ones as new ones are written."""

import unittest

from wisp_fixture import WispTestCase


class RetentionTest(WispTestCase):

    server_env = {"WISP_INVOCATION_RECORDS_PER_FUNCTION": "5"}

    def logs(self, fid):
        r = self.wisp.request("GET", f"/v1/functions/{fid}/logs?limit=100")
        self.assertEqual(r.status, 200, r)
        return r.json["items"]

    def test_keeps_the_newest_records_of_each_function(self):
        busy = self.deploy("exports.handler = async (e) => e.i;")
        quiet = self.deploy("exports.handler = async (e) => e.i;")
        request_ids = [self.invoke_ok(busy, {"i": i})["request_id"] for i in range(12)]
        for i in range(3):
            self.invoke_ok(quiet, {"i": i})

        # The logs route flushes the writer, which prunes before the flush returns.
        items = self.logs(busy)
        self.assertEqual([it["response"] for it in items], [11, 10, 9, 8, 7])
        self.assertEqual([it["request_id"] for it in items], request_ids[:-6:-1])
        self.assertEqual([it["response"] for it in self.logs(quiet)], [2, 1, 0])
        self.assertEqual(self.wisp.health()["invocationRecordsPruned"], 7)


if __name__ == "__main__":
    unittest.main()
