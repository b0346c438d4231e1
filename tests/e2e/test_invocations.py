"""End-to-end: one query surface for every call (/v1/invocations). Sync calls' records and async
invocations are listed together, newest first, filtered by function, status, type and time,
paged by limit and offset; a sync call is found by its request id. A stored record keeps at
most the per-field cap of a payload and says so, while the caller gets the whole response."""

import time
import unittest

from wisp_fixture import WispTestCase

FIELD_CAP = 1024

CODE = """
exports.handler = async (event) => {
  console.log("call", event.n);
  if (event.fail) throw new Error("asked to fail " + event.n);
  return {n: event.n, pad: event.pad || ""};
};
"""


class InvocationQueryTest(WispTestCase):

    server_env = {"WISP_INVOCATION_RECORD_FIELD_MAX_BYTES": str(FIELD_CAP)}

    def list(self, query=""):
        r = self.wisp.request("GET", "/v1/invocations" + query)
        self.assertEqual(r.status, 200, r)
        return r.json["items"]

    def invoke_async(self, fid, event):
        r = self.wisp.request("POST", f"/v1/functions/{fid}/invoke", body={"event": event},
                              headers={"X-Invocation-Type": "Event"})
        self.assertEqual(r.status, 202, r)
        return r.json["invocation_id"]

    def wait_done(self, invocation_id, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            r = self.wisp.request("GET", f"/v1/invocations/{invocation_id}")
            self.assertEqual(r.status, 200, r)
            if r.json["item"]["status"] not in ("queued", "running"):
                return r.json["item"]
            self.assertLess(time.monotonic(), deadline, r.json)
            time.sleep(0.05)

    def test_sync_and_async_calls_in_one_listing(self):
        fid = self.deploy(CODE)
        other = self.deploy(CODE)
        first = self.invoke_ok(fid, {"n": 1})
        time.sleep(0.01)  # distinct invocation times, so the order below is fixed
        failed = self.wisp.invoke(fid, {"n": 2, "fail": True})
        self.assertEqual(failed.status, 200, failed)
        self.assertEqual(failed.json["status"], "error", failed)
        time.sleep(0.01)
        async_id = self.invoke_async(fid, {"n": 3})
        self.assertEqual(self.wait_done(async_id)["status"], "success")
        time.sleep(0.01)
        last = self.invoke_ok(fid, {"n": 4})
        self.invoke_ok(other, {"n": 5})

        items = self.list(f"?function_id={fid}")
        # The async invocation once (its attempt's record is not listed beside it).
        self.assertEqual([it["id"] for it in items],
                         [last["request_id"], async_id, failed.json["request_id"],
                          first["request_id"]])
        self.assertEqual([it["type"] for it in items], ["sync", "async", "sync", "sync"])
        self.assertEqual(items[1]["attempts"], 1)
        self.assertEqual(items[1]["event"], {"n": 3})
        self.assertEqual(items[0]["response"], {"n": 4, "pad": ""})
        self.assertEqual(items[0]["logs"], ["call 4"])
        self.assertEqual(items[0]["event_truncated"], False)
        for item in items:
            self.assertEqual(item["function_id"], fid)
            for key in ("id", "request_id", "status", "created_at", "finished_at", "duration_ms",
                        "event", "response", "logs", "error", "history"):
                self.assertIn(key, item)

        # A function's failed calls, without paging through /logs.
        errors = self.list(f"?function_id={fid}&status=error")
        self.assertEqual([it["id"] for it in errors], [failed.json["request_id"]])
        self.assertIn("asked to fail 2", errors[0]["error"])
        self.assertEqual(errors[0]["response"]["errorMessage"], "asked to fail 2")

        self.assertEqual(len(self.list(f"?function_id={fid}&type=sync")), 3)
        self.assertEqual([it["id"] for it in self.list(f"?function_id={fid}&type=async")],
                         [async_id])
        # Every function: the other function's call is the newest.
        self.assertEqual(self.list("?limit=1")[0]["function_id"], other)

        # Pages, and time windows (since: at or after; until: before).
        page = self.list(f"?function_id={fid}&limit=2&offset=1")
        self.assertEqual([it["id"] for it in page], [async_id, failed.json["request_id"]])
        since = items[2]["created_at"]
        self.assertEqual([it["id"] for it in self.list(f"?function_id={fid}&since={since}")],
                         [it["id"] for it in items[:3]])
        self.assertEqual([it["id"] for it in self.list(f"?function_id={fid}&until={since}")],
                         [first["request_id"]])

        # A sync call by its request id.
        r = self.wisp.request("GET", f"/v1/invocations/{first['request_id']}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["item"]["type"], "sync")
        self.assertEqual(r.json["item"]["status"], "success")
        self.assertEqual(r.json["item"]["response"], {"n": 1, "pad": ""})
        self.assertEqual(self.wisp.request("GET", "/v1/invocations/no-such-id").status, 404)

    def test_bad_parameters_are_named(self):
        for query, word in (("?status=broken", "status"), ("?type=batch", "type"),
                            ("?since=yesterday", "since"), ("?until=2025-13-01T00:00:00Z", "until"),
                            ("?limit=0", "limit"), ("?offset=-1", "offset"),
                            ("?functionId=x", "functionId")):
            r = self.wisp.request("GET", "/v1/invocations" + query)
            self.assertEqual(r.status, 400, (query, r))
            self.assertIn(word, r.body.decode(), query)

    def test_a_large_payload_is_cut_in_the_record_only(self):
        fid = self.deploy(CODE)
        pad = "é" * 3000  # 6000 bytes: the cut must not split a character
        reply = self.invoke_ok(fid, {"n": 7, "pad": pad})
        self.assertEqual(reply["response"]["pad"], pad)  # the caller gets it whole

        r = self.wisp.request("GET", f"/v1/invocations/{reply['request_id']}")
        self.assertEqual(r.status, 200, r)
        item = r.json["item"]
        for field in ("event", "response"):
            self.assertIsNone(item[field])
            self.assertTrue(item[f"{field}_truncated"])
            self.assertGreater(item[f"{field}_size"], 6000)
            preview = item[f"{field}_preview"]
            self.assertLessEqual(len(preview.encode()), FIELD_CAP)
            self.assertGreater(len(preview.encode()), FIELD_CAP - 4)
            self.assertNotIn("\ufffd", preview)
        self.assertTrue(item["response_preview"].startswith('{"n":7,"pad":"éé'))
        self.assertFalse(item["logs_truncated"])
        self.assertEqual(item["logs"], ["call 7"])
        # /logs shows the record the same way.
        logs = self.wisp.request("GET", f"/v1/functions/{fid}/logs?limit=1").json["items"]
        self.assertTrue(logs[0]["event_truncated"])
        self.assertIsNone(logs[0]["event"])


if __name__ == "__main__":
    unittest.main()
