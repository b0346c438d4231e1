"""A real wispd for end-to-end tests: started on a free port with a temporary data directory,
stopped with SIGTERM, and checked on the way out (exit code 0, no sandbox process left).

Every GET of a function through the fixture records the pids of its instances; before the
daemon is stopped the fixture also records every descendant of wispd and every process in
its cgroups, so that a sandbox nobody asked about is still checked after shutdown.
"""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def find_binary():
    path = os.environ.get("WISP_BIN") or os.path.join(REPO_ROOT, "build", "bin", "wispd")
    if not os.access(path, os.X_OK):
        raise unittest.SkipTest(f"wispd binary not found at {path}; build it or set WISP_BIN")
    return path


def require_root():
    if os.geteuid() != 0:
        raise unittest.SkipTest("wispd spawns sandboxes through cgroups and namespaces: needs root")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- /proc helpers -------------------------------------------------------------------------

def proc_start_time(pid):
    """The start time of `pid` (clock ticks since boot), or None when it is gone; with the pid
    it names a process uniquely, so a reused pid is not mistaken for a survivor."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[19])  # field 22 of stat, after pid and comm


def proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat[stat.rindex(")") + 2:].split()[0]


PF_EXITING = 0x4  # task flag, field 9 of /proc/<pid>/stat


def live_cgroups(pid):
    """The text of /proc/<pid>/cgroup, or None when the process is gone or exiting: on cgroup v1
    the kernel shows an exiting task in "/" of every hierarchy, whichever group it ran in."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            cgroups = f.read()
        with open(f"/proc/{pid}/stat") as f:  # after: the flag is never cleared once set
            stat = f.read()
    except OSError:
        return None
    flags = int(stat[stat.rindex(")") + 2:].split()[6])
    return None if flags & PF_EXITING else cgroups


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def parent_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat[stat.rindex(")") + 2:].split()[1])


def descendants(root_pid):
    children = {}
    for pid in all_pids():
        ppid = parent_of(pid)
        if ppid is not None:
            children.setdefault(ppid, []).append(pid)
    out, stack = [], [root_pid]
    while stack:
        for child in children.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out


def pids_in_wisp_cgroups(wispd_pid):
    """Processes whose cgroup path is under /wisp/<wispd pid>/ (where wispd puts sandboxes)."""
    marker = f"/wisp/{wispd_pid}/"
    found = []
    for pid in all_pids():
        try:
            with open(f"/proc/{pid}/cgroup") as f:
                if marker in f.read():
                    found.append(pid)
        except OSError:  # the process ended meanwhile
            pass
    return found


def alive(pid, start_time):
    now = proc_start_time(pid)
    return now is not None and now == start_time


# --- HTTP ----------------------------------------------------------------------------------

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def __repr__(self):
        text = self.body[:500].decode("utf-8", "replace")
        return f"<HTTP {self.status} {text}>"


class Client:
    """One keep-alive connection; reconnects once when the server closed it. Not thread-safe:
    give each thread its own."""

    def __init__(self, port, timeout=60, headers=None):
        self.port = port
        self.timeout = timeout
        self.conn = None
        # Sent with every request (the API key of a wispd that requires one).
        self.default_headers = dict(headers or {})

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method, path, body=None, headers=None, raw=None):
        hdrs = dict(self.default_headers)
        data = None
        if raw is not None:
            data = raw
            hdrs["Content-Type"] = "application/json"
        elif body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        if headers:
            hdrs.update(headers)
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                       timeout=self.timeout)
            try:
                self.conn.request(method, path, body=data, headers=hdrs)
                resp = self.conn.getresponse()
                payload = resp.read()
                result = Response(resp.status, {k.lower(): v for k, v in resp.getheaders()},
                                  payload)
                if resp.will_close:
                    self.close()
                return result
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest, http.client.BadStatusLine):
                # A keep-alive connection the server closed between requests: retry once on a
                # new one. (A request that was sent and then dropped fails the second time.)
                self.close()
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")


def raw_request(port, method, path, body, content_type="application/json", timeout=30):
    """Sends a request over a plain socket and reads the answer even when the server answers
    before the body is sent and closes (as it may for a body over the limit): http.client
    gives up on the broken pipe instead of reading the response."""
    head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        data = head + body
        sent = 0
        try:
            while sent < len(data):
                sent += sock.send(data[sent:sent + 65536])
        except (BrokenPipeError, ConnectionResetError):
            pass
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except (ConnectionResetError, socket.timeout):
            pass
    finally:
        sock.close()
    raw = b"".join(chunks)
    if not raw:
        raise AssertionError(f"no response to {method} {path} (sent {sent} of {len(data)} "
                             "bytes before the connection closed)")
    header_blob, _, payload = raw.partition(b"\r\n\r\n")
    lines = header_blob.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        payload = payload[:int(headers["content-length"])]
    return Response(status, headers, payload)


class WispServer:
    """A wispd process. `start()` waits for /health; `stop()` checks the way out."""

    def __init__(self, data_dir=None, env=None, args=None, log_level=None, binary=None,
                 api_key_secret=None):
        require_root()
        # The fixture's own requests carry this key as a bearer token (a wispd with auth on).
        self.auth_headers = ({"Authorization": f"Bearer {api_key_secret}"}
                             if api_key_secret else {})
        # `binary`: a wispd of the caller's choice (bench/run's build directory); else WISP_BIN.
        self.binary = binary or find_binary()
        self.own_data_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="wisp-e2e-")
        self.extra_env = env or {}
        self.extra_args = args or []
        # WISP_E2E_LOG_LEVEL=debug and WISP_E2E_KEEP=1 (keep data dirs and logs) help diagnose.
        self.log_level = log_level or os.environ.get("WISP_E2E_LOG_LEVEL", "info")
        self.proc = None
        self.last_pid = None
        self.port = None
        self.log_path = None
        self._log_file = None
        self._known = {}  # pid -> start time of every sandbox process seen
        self._lock = threading.Lock()
        self._client = None
        self._client_lock = threading.Lock()

    # lifecycle

    def start(self, timeout=15):
        self.port = free_port()
        self.log_path = os.path.join(self.data_dir, f"wispd-{self.port}.log")
        self._log_file = open(self.log_path, "ab")
        env = dict(os.environ)
        env.update(self.extra_env)
        cmd = [self.binary, "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data_dir,
               "--log-level", self.log_level] + self.extra_args
        self.proc = subprocess.Popen(cmd, stdout=self._log_file, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        self._client = Client(self.port, headers=self.auth_headers)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"wispd exited with {self.proc.returncode} during start:\n"
                                     + self.log_tail())
            try:
                probe = Client(self.port, timeout=2)
                try:
                    r = probe.request("GET", "/health")
                finally:
                    probe.close()
                if r.status == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("wispd did not answer /health in time:\n" + self.log_tail())
            time.sleep(0.05)

    def snapshot_sandboxes(self):
        """Records every process wispd started (descendants and members of its cgroups)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        pids = set(descendants(self.proc.pid)) | set(pids_in_wisp_cgroups(self.proc.pid))
        with self._lock:
            for pid in pids:
                st = proc_start_time(pid)
                if st is not None:
                    self._known.setdefault(pid, st)

    def _note_pid(self, pid):
        if not isinstance(pid, int) or pid <= 0:
            return
        st = proc_start_time(pid)
        if st is not None:
            with self._lock:
                self._known.setdefault(pid, st)

    def known_pids(self):
        with self._lock:
            return dict(self._known)

    def stop(self, timeout=30, check=True):
        """SIGTERM, wait, and (with `check`) assert exit code 0 and no surviving sandbox."""
        if self.proc is None:
            return None
        if self._client:
            self._client.close()
        self.snapshot_sandboxes()
        wispd_pid = self.last_pid = self.proc.pid
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"wispd did not exit within {timeout}s of SIGTERM:\n"
                                 + self.log_tail())
        finally:
            self._log_file.close()
        self.proc = None
        if check:
            if rc != 0:
                raise AssertionError(f"wispd exited with {rc}, not 0:\n" + self.log_tail())
            self.assert_no_survivors(wispd_pid)
        return rc

    def assert_no_survivors(self, wispd_pid, grace=3.0):
        known = self.known_pids()
        deadline = time.monotonic() + grace
        while True:
            survivors = {pid: st for pid, st in known.items()
                         if alive(pid, st) and proc_state(pid) != "Z"}
            in_cgroups = pids_in_wisp_cgroups(wispd_pid)
            if not survivors and not in_cgroups:
                return
            if time.monotonic() > deadline:
                desc = []
                for pid in sorted(set(survivors) | set(in_cgroups)):
                    try:
                        with open(f"/proc/{pid}/cmdline", "rb") as f:
                            cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
                    except OSError:
                        cmd = "?"
                    desc.append(f"{pid}: {cmd}")
                raise AssertionError("sandbox processes survived wispd:\n" + "\n".join(desc))
            time.sleep(0.05)

    def kill(self):
        """Last resort for a daemon that would not stop: SIGKILL to its process group (it was
        started in a session of its own, so this reaches only what it started)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def cleanup(self):
        if os.environ.get("WISP_E2E_KEEP"):
            print(f"\nkept {self.data_dir}", file=sys.stderr)
            return
        if self.own_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return "(no log)"

    # API helpers (through one shared keep-alive connection; threads use client())

    def client(self, timeout=60):
        return Client(self.port, timeout=timeout, headers=self.auth_headers)

    def request(self, method, path, body=None, headers=None, raw=None):
        with self._client_lock:
            return self._client.request(method, path, body=body, headers=headers, raw=raw)

    def create(self, **spec):
        r = self.request("POST", "/v1/functions", spec)
        if r.status != 201:
            raise AssertionError(f"create failed: {r!r}")
        return r.json["id"]

    def get(self, fid):
        r = self.request("GET", f"/v1/functions/{fid}")
        if r.status == 200:
            for inst in r.json["item"].get("instances", []):
                self._note_pid(inst.get("pid"))
        return r

    def function(self, fid):
        r = self.get(fid)
        if r.status != 200:
            raise AssertionError(f"GET function failed: {r!r}")
        return r.json["item"]

    def wait_state(self, fid, states=("ready", "error"), timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            item = self.function(fid)
            if item["state"] in states:
                return item
            if time.monotonic() > deadline:
                raise AssertionError(f"function {fid} stuck in state {item['state']}")
            time.sleep(0.02)

    def invoke(self, fid, event=None, raw=None, client=None):
        body = None if raw is not None else {"event": {} if event is None else event}
        if client is not None:
            r = client.request("POST", f"/v1/functions/{fid}/invoke", body=body, raw=raw)
        else:
            r = self.request("POST", f"/v1/functions/{fid}/invoke", body=body, raw=raw)
        return r

    def invoke_concurrently(self, fid, events, timeout=60):
        """Invokes `fid` once per event, each on a connection of its own, all released at once.
        Returns the responses in order (an exception in place of a call that raised)."""
        results = [None] * len(events)
        barrier = threading.Barrier(len(events))

        def call(i):
            client = self.client(timeout=timeout)
            try:
                barrier.wait()
                results[i] = self.invoke(fid, events[i], client=client)
            except Exception as e:  # noqa: BLE001
                results[i] = e
            finally:
                client.close()

        threads = [threading.Thread(target=call, args=(i,)) for i in range(len(events))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=timeout)
        return results

    def invoke_from_clients(self, fid, clients, calls_per_client, event):
        """Invokes `fid` `calls_per_client` times back to back from each of `clients` (kept-alive
        connections), all clients at once; `event(i)` is the i-th call's event. Returns the
        responses of the calls that did not succeed."""
        failures = []

        def run(client):
            for i in range(calls_per_client):
                r = self.invoke(fid, event(i), client=client)
                if r.status != 200 or r.json["status"] != "success":
                    failures.append(r)

        threads = [threading.Thread(target=run, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return failures

    def invoke_in_background(self, fid, event=None, timeout=30):
        """Starts one call on a connection of its own. Returns (thread, result): after
        thread.join(), result["r"] is the response or the exception."""
        result = {}

        def call():
            client = self.client(timeout=timeout)
            try:
                result["r"] = self.invoke(fid, event, client=client)
            except Exception as e:  # noqa: BLE001
                result["r"] = e
            finally:
                client.close()

        thread = threading.Thread(target=call)
        thread.start()
        return thread, result

    def record_instances(self, fid):
        """GETs the function so its instance pids are recorded for the survivor check."""
        self.get(fid)

    def health(self):
        return self.request("GET", "/health").json

    def resources(self):
        """(open fds, RSS in KiB, instances per /health) of wispd now: what a leak would grow."""
        pid = self.proc.pid
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        return fds, rss, self.health()["instances"]


class SharedStoreTestCase(unittest.TestCase):
    """Two wispd processes, `a` and `b`, each with a data dir of its own, on one store file;
    `store_env` is what else both are started with."""

    store_env = {}

    @classmethod
    def setUpClass(cls):
        cls.store_dir = tempfile.mkdtemp(prefix="wisp-e2e-store-")
        env = dict(cls.store_env, WISP_STORE_FILE=os.path.join(cls.store_dir, "shared.db"))
        # Separate sandbox uid ranges: the two launchers hand out ids independently.
        cls.a = WispServer(env=dict(env, WISP_SANDBOX_ID_BASE=str(0x70000000),
                                    WISP_SANDBOX_ID_COUNT="4096"))
        cls.b = WispServer(env=dict(env, WISP_SANDBOX_ID_BASE=str(0x70000000 + 4096),
                                    WISP_SANDBOX_ID_COUNT="4096"))
        try:
            cls.a.start()
            cls.b.start()
        except BaseException:
            cls._remove_servers()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            for server in (cls.a, cls.b):
                server.stop()
        finally:
            cls._remove_servers()

    @classmethod
    def _remove_servers(cls):
        for server in (cls.a, cls.b):
            server.kill()
            server.cleanup()
        shutil.rmtree(cls.store_dir, True)


class WispTestCase(unittest.TestCase):
    """One wispd shared by the tests of a class; stopped and checked in tearDownClass."""

    server_env = None
    server_args = None

    @classmethod
    def setUpClass(cls):
        cls.wisp = WispServer(env=cls.server_env, args=cls.server_args)
        try:
            cls.wisp.start()
        except BaseException:
            cls.wisp.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.wisp.stop()
        finally:
            cls.wisp.kill()
            cls.wisp.cleanup()

    _counter = 0
    _counter_lock = threading.Lock()

    def unique_name(self, prefix="fn"):
        with WispTestCase._counter_lock:
            WispTestCase._counter += 1
            n = WispTestCase._counter
        # No "--" in it: that separates a project from a function's name.
        name = f"{prefix}-{self._testMethodName[:40]}-{n}".replace("_", "-")
        while "--" in name:
            name = name.replace("--", "-")
        return name

    def deploy(self, code, runtime="node", expect_state="ready", **spec):
        spec.setdefault("name", self.unique_name())
        fid = self.wisp.create(runtime=runtime, code=code, **spec)
        item = self.wisp.wait_state(fid)
        if expect_state is not None:
            self.assertEqual(item["state"], expect_state, item)
        return fid

    def invoke_ok(self, fid, event=None, client=None):
        r = self.wisp.invoke(fid, event, client=client)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "success", r)
        return r.json
