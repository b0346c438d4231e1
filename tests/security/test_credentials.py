"""Authentication against hostile callers (issue 12): a wispd others can reach never runs without
authentication; with authentication required, no request without a key deploys or runs code, and
malformed or oversized credentials get a clear refusal without hurting the server.

The listen-address refusal runs wispd in a network namespace of its own (`unshare --net`), so
that even a wispd that wrongly listens on 0.0.0.0 serves nobody."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))

import auth_support  # noqa: E402
import wisp_fixture  # noqa: E402
from auth_support import AuthServer  # noqa: E402


class NonLoopbackListenerTest(unittest.TestCase):
    def run_isolated(self, listen, extra_args=()):
        """Runs wispd in a new network namespace; returns (exit code or None if it kept running
        for 15 s, output)."""
        wisp_fixture.require_root()
        if shutil.which("unshare") is None:
            self.skipTest("unshare (util-linux) is not installed")
        data_dir = tempfile.mkdtemp(prefix="wisp-listen-")
        self.addCleanup(shutil.rmtree, data_dir, True)
        log_path = os.path.join(data_dir, "out.log")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                ["unshare", "--net", "--", wisp_fixture.find_binary(), "--listen", listen,
                 "--data-dir", data_dir, *extra_args],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                rc = proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                rc = None
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        with open(log_path, "rb") as f:
            return rc, f.read().decode(errors="replace")

    def test_refuses_any_address_without_auth(self):
        for listen in ("0.0.0.0:18080", ":::18080", "10.11.12.13:18080"):
            with self.subTest(listen=listen):
                rc, out = self.run_isolated(listen)
                self.assertIsNotNone(rc, f"wispd kept running on {listen} without auth:\n{out}")
                self.assertEqual(rc, 1, out)
                self.assertIn("refusing to listen", out)
                self.assertIn("--auth-required", out)
                # It stopped before starting anything, let alone listening.
                self.assertNotIn("listening", out.replace("refusing to listen", ""))


class AuthRequiredHostileTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = AuthServer().start()
        cls.port = cls.server.wisp.port

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def request(self, method, path, headers=None, body=None):
        client = wisp_fixture.Client(self.port)
        try:
            return client.request(method, path, body=body, headers=headers)
        finally:
            client.close()

    def test_no_key_deploys_or_runs_nothing(self):
        code = "exports.handler = async () => 'pwned';"
        attempts = [
            ("POST", "/v1/functions", {"name": "intruder", "runtime": "node", "code": code}),
            ("POST", "/functions", {"name": "intruder2", "runtime": "node", "code": code}),
        ]
        for method, path, body in attempts:
            for headers in (None, {"Authorization": "Bearer "},
                            {"Authorization": "Bearer " + "A" * 40},
                            {"Authorization": "Basic YWRtaW46YWRtaW4="}):
                r = self.request(method, path, headers=headers, body=body)
                self.assertEqual(r.status, 401, (path, headers, r))
        listed = self.server.wisp.request("GET", "/v1/functions")
        self.assertEqual(listed.status, 200)
        names = [f["name"] for f in listed.json["items"]]
        self.assertNotIn("intruder", names)
        self.assertNotIn("intruder2", names)

    def test_malformed_and_oversized_credentials(self):
        cases = [
            ({"Authorization": "Bearer " + "x" * 12000}, "/v1/functions", 401),
            ({"Authorization": "Negotiate \xff\xfe garbage"}, "/v1/functions", 401),
            ({"Authorization": "AWS4-HMAC-SHA256 Credential=" + "/" * 8000 +
              ", SignedHeaders=host, Signature=" + "a" * 64}, "/2015-03-31/functions/", 403),
            ({"Authorization": "AWS4-HMAC-SHA256 Credential=WKX/20200101/us-east-1/lambda/"
              "aws4_request, SignedHeaders=" + ";".join(f"h{i}" for i in range(2000)) +
              ", Signature=" + "a" * 64}, "/2015-03-31/functions/", 403),
            ({"Authorization": "AWS4-HMAC-SHA256 " + ",".join(["Credential=a"] * 1000)},
             "/2015-03-31/functions/", 403),
        ]
        for headers, path, status in cases:
            with self.subTest(header=headers["Authorization"][:60]):
                r = self.request("GET", path, headers=headers)
                self.assertEqual(r.status, status, r)
                if status == 403:
                    self.assertIn(r.headers["x-amzn-errortype"],
                                  ("IncompleteSignatureException", "UnrecognizedClientException"))
        # A header past the server's header limit is refused before auth sees it.
        r = self.request("GET", "/v1/functions",
                         headers={"Authorization": "Bearer " + "y" * (20 << 10)})
        self.assertEqual(r.status, 431, r)
        # And the server still serves its keys.
        self.assertEqual(self.server.wisp.request("GET", "/v1/functions").status, 200)

    def test_a_flood_of_wrong_keys_does_not_lock_out_the_right_one(self):
        stop = threading.Event()
        refused = []

        def guess(n):
            client = wisp_fixture.Client(self.port)
            try:
                for i in range(100):
                    if stop.is_set():
                        return
                    r = client.request("GET", "/v1/functions",
                                       headers={"Authorization": f"Bearer guess-{n}-{i:032d}"})
                    refused.append(r.status)
            finally:
                client.close()

        threads = [threading.Thread(target=guess, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        try:
            ok = self.server.wisp.request("GET", "/v1/functions")
            self.assertEqual(ok.status, 200, ok)
        finally:
            for t in threads:
                t.join(timeout=120)
            stop.set()
        self.assertTrue(refused)
        self.assertEqual(set(refused), {401})


if __name__ == "__main__":
    unittest.main()
