"""Races between calls and changes of one function: calls that arrive while the function first
deploys, updates that overlap, and a delete while calls wait for an instance."""

import threading
import time
import unittest

from wisp_fixture import WispTestCase

# Importing takes half a second, so a deploy or a cold start stays in flight long enough for
# other requests to arrive meanwhile. 128 MB keeps it off the prewarmed pool (256 MB).
SLOW_IMPORT = "import time\ntime.sleep(0.5)\ndef handler(event):\n    return {'v': %r}\n"


def run_all(*functions):
    results = [None] * len(functions)

    def call(i, fn):
        results[i] = fn()

    threads = [threading.Thread(target=call, args=(i, fn)) for i, fn in enumerate(functions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


class RacesTest(WispTestCase):
    def test_calls_during_the_first_deploy_all_wait_for_it(self):
        fid = self.wisp.create(name="race-first", runtime="python", memory_mb=128,
                               code=SLOW_IMPORT % "one")
        results = self.wisp.invoke_concurrently(fid, [{}] * 4)
        for r in results:
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["response"], {"v": "one"}, r)

    def test_overlapping_updates_apply_in_order_and_lose_nothing(self):
        fid = self.wisp.create(name="race-update", runtime="python", memory_mb=128,
                               code=SLOW_IMPORT % "v1")
        self.assertEqual(self.wisp.wait_state(fid)["state"], "ready")
        code_client, env_client = self.wisp.client(), self.wisp.client()

        def put_code():
            return code_client.request("PUT", f"/v1/functions/{fid}",
                                       {"code": SLOW_IMPORT % "v2"})

        def put_env():
            time.sleep(0.2)  # arrives while the code update deploys
            return env_client.request("PUT", f"/v1/functions/{fid}",
                                      {"env": {"X": "1"}, "timeout_seconds": 9})

        code_reply, env_reply = run_all(put_code, put_env)
        self.assertEqual(code_reply.status, 200, code_reply)
        self.assertEqual(env_reply.status, 200, env_reply)
        item = self.wisp.function(fid)
        self.assertEqual(item["env"], {"X": "1"})
        self.assertEqual(item["timeout_seconds"], 9)
        self.assertIn("'v2'", item["code"])
        self.assertEqual(item["version"], 3)
        self.assertEqual(self.wisp.invoke(fid).json["response"], {"v": "v2"})

    def test_calls_waiting_for_a_deleted_function_get_404(self):
        fid = self.wisp.create(name="race-delete", runtime="node", max_concurrency=1,
                               code="async function handler(e) {"
                                    " await new Promise(r => setTimeout(r, 1500)); return 1; }")
        self.assertEqual(self.wisp.wait_state(fid)["state"], "ready")
        first, second, deleter = self.wisp.client(), self.wisp.client(), self.wisp.client()

        def delete_later():
            time.sleep(0.5)  # both calls are in: one runs, one waits for the only instance
            return deleter.request("DELETE", f"/v1/functions/{fid}")

        results = run_all(lambda: self.wisp.invoke(fid, client=first),
                          lambda: (time.sleep(0.1), self.wisp.invoke(fid, client=second))[1],
                          delete_later)
        self.assertEqual(results[2].status, 200, results[2])
        self.assertEqual(results[1].status, 404, results[1])


if __name__ == "__main__":
    unittest.main()
