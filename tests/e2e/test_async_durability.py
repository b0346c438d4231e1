"""End-to-end: kill -9 of wispd under async load (hostile-functions case 25). Every invocation
that got its 202 completes after a restart on the same data directory: queued ones and those
cut short mid-run, at least once, under their original id."""

import os
import shutil
import tempfile
import threading
import time
import unittest

from async_support import Wispd

SLOW_ECHO = '''
import time
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    print("ran", context.aws_request_id)
    return {"i": event.get("i"), "request_id": context.aws_request_id}
'''


class KillNineTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="wisp-kill9-")
        os.chmod(self.dir, 0o711)
        self.wisp = Wispd(self.dir).start()

    def tearDown(self):
        self.wisp.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_every_accepted_invocation_completes_after_kill_9(self):
        w = self.wisp
        fid = w.create_function(name="slow-echo", runtime="python", code=SLOW_ECHO,
                                max_concurrency=4, retry_delay_seconds=0)
        accepted = []
        refused = []
        lock = threading.Lock()
        stop = threading.Event()

        def submit(t):
            i = 0
            while not stop.is_set():
                try:
                    r = w.request("POST", f"/v1/functions/{fid}/invoke",
                                  {"sleep": 0.05, "i": f"{t}-{i}"}, {"X-Invocation-Type": "Event"},
                                  timeout=10)
                    with lock:
                        (accepted if r.status == 202 else refused).append(
                            r.json["invocation_id"] if r.status == 202 else r.status)
                except OSError:
                    with lock:
                        refused.append("connection")  # in flight at the kill: never accepted
                    return
                i += 1

        threads = [threading.Thread(target=submit, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        w.wait_for(lambda: len(accepted) >= 400, timeout=60, interval=0.01, what="400 accepts")
        # Some are running, most are queued: crash now, while accepts are still arriving.
        w.kill9()
        stop.set()
        for t in threads:
            t.join()
        ids = list(accepted)
        self.assertEqual(len(set(ids)), len(ids))

        w.start()
        def done():
            r = w.request("GET", f"/v1/invocations?function_id={fid}&status=success&limit=1000")
            got = {i["id"] for i in r.json["items"]}
            return got if got >= set(ids) else None
        total = len(ids)
        completed = w.wait_for(done, timeout=240, interval=0.5, what="every accepted invocation")
        interrupted = 0
        for iid in ids:
            item = w.invocation(iid)
            self.assertEqual(item["status"], "success", item)
            self.assertEqual(item["response"]["request_id"], iid)  # the id survived the crash
            interrupted += any(h["status"] == "interrupted" for h in item["history"])
        print(f"\nkill -9: accepted {total}, completed {len(completed & set(ids))}, "
              f"interrupted mid-run {interrupted}, refused/cut {len(refused)}")
        self.assertEqual(len(completed & set(ids)), total)


if __name__ == "__main__":
    unittest.main()
