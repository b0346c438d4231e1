"""A wispd for the async and seed-002 end-to-end tests: unlike wisp_fixture's, it can be killed
with SIGKILL and started again on the same data directory (the durability tests need both).
Standard library only; needs root (sandboxes) and a built wispd (WISP_BIN or build/bin/wispd).
"""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from wisp_fixture import Response as Reply

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def wispd_binary():
    path = os.environ.get("WISP_BIN") or os.path.join(REPO_ROOT, "build", "bin", "wispd")
    if not os.access(path, os.X_OK):
        raise unittest.SkipTest(f"wispd not found at {path}; build it or set WISP_BIN")
    if os.geteuid() != 0:
        raise unittest.SkipTest("wispd starts sandboxes (namespaces, cgroups): needs root")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pids_in_cgroup_of(wispd_pid):
    marker = f"/wisp/{wispd_pid}/"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cgroup") as f:
                if marker in f.read():
                    found.append(int(entry))
        except OSError:
            pass
    return found


class Wispd:
    def __init__(self, data_dir=None, env=None):
        self.binary = wispd_binary()
        self.env = dict(os.environ, **(env or {}))
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="wisp-async-e2e-")
        # Go builds run as the sandbox user, which must be able to traverse to the data dir.
        os.chmod(self.data_dir, 0o711)
        self.port = None
        self.proc = None
        self.log_path = os.path.join(self.data_dir, "wispd.log")

    def start(self, timeout=30):
        self.port = free_port()
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.binary, "--listen", f"127.0.0.1:{self.port}", "--data-dir",
             os.path.join(self.data_dir, "data")], stdout=log, stderr=subprocess.STDOUT,
            env=self.env)
        log.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"wispd exited with {self.proc.returncode}: {self.log()}")
            try:
                if self.request("GET", "/health").status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("wispd did not answer /health in time: " + self.log())

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-4000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, timeout=30):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()

    def kill9(self):
        """SIGKILL, as a crash: the kernel ends the sandboxes through PDEATHSIG; anything left
        in this wispd's cgroups is killed here so the next run starts clean."""
        if self.proc is None:
            return
        pid = self.proc.pid
        self.proc.kill()
        self.proc.wait()
        deadline = time.time() + 10
        while time.time() < deadline:
            left = pids_in_cgroup_of(pid)
            if not left:
                break
            for p in left:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)

    def close(self):
        self.stop()
        if self.own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def request(self, method, path, body=None, headers=None, timeout=120):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            hdrs = dict(headers or {})
            data = None
            if body is not None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                hdrs.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def wait_for(self, predicate, timeout=60, interval=0.1, what="condition"):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(interval)
        raise AssertionError(f"timed out waiting for {what}; last: {last!r}")

    # /v1 helpers -------------------------------------------------------------------------

    def create_function(self, **fields):
        reply = self.request("POST", "/v1/functions", fields)
        assert reply.status == 201, reply
        fid = reply.json["id"]
        self.wait_for(lambda: self.request("GET", f"/v1/functions/{fid}").json["item"]["state"]
                      in ("ready", "error"), what="deploy")
        item = self.request("GET", f"/v1/functions/{fid}").json["item"]
        assert item["state"] == "ready", item
        return fid

    def invoke_async(self, fid, event, header=True):
        if header:
            reply = self.request("POST", f"/v1/functions/{fid}/invoke", event,
                                 {"X-Invocation-Type": "Event"})
        else:
            reply = self.request("POST", f"/v1/functions/{fid}/invoke",
                                 {"async": True, "event": event})
        assert reply.status == 202, reply
        return reply.json["invocation_id"]

    def invocation(self, iid):
        reply = self.request("GET", f"/v1/invocations/{iid}")
        assert reply.status == 200, reply
        return reply.json["item"]

    def wait_invocation(self, iid, statuses=("success", "dead_letter"), timeout=60):
        return self.wait_for(lambda: (lambda i: i if i["status"] in statuses else None)(
            self.invocation(iid)), timeout=timeout, what=f"invocation {iid} in {statuses}")


class WispdTestCase(unittest.TestCase):
    """Test classes that share one wispd, started before their first test."""

    @classmethod
    def setUpClass(cls):
        cls.wisp = Wispd().start()

    @classmethod
    def tearDownClass(cls):
        cls.wisp.close()
