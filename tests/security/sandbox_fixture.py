"""Shared machinery of the security suite: one real wispd for the whole run (started through the
e2e fixture, tests/e2e/wisp_fixture.py), an innocent function that must keep answering while a
hostile one runs, and the host-cleanliness check every test ends with.

Every hostile case asserts four things (../../../shared/reference/hostile-functions.md):
  1. the status or errno seen inside (the hostile function reports it in its response),
  2. the error the caller gets (clear, typed, no wispd internals),
  3. that the host is clean afterwards (no process, cgroup, mount or file of the instance),
  4. that an innocent function invoked at the same time answered correctly and in time.
"""

import os
import re
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "e2e"))

try:
    import wisp_fixture  # noqa: E402
except ImportError as e:  # the e2e fixture is the one way this repo starts a wispd
    raise unittest.SkipTest(f"tests/e2e/wisp_fixture.py not importable: {e}")

CGROUP_ROOT = "/sys/fs/cgroup"
POLICY_PATH = os.path.join(REPO_ROOT, "src", "wisp", "sandbox", "seccomp_policy.txt")
UNISTD = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"

# Limits the suite runs with (kept small so exhausting them is quick).
TMP_MB = 64
PIDS_LIMIT = 128
INIT_TIMEOUT_S = 3
# What "in time" means for the innocent function while a hostile one runs on this 2-core box.
INNOCENT_MAX_SECONDS = 2.0
# The host uids sandboxes run as: one per instance from wispd's default range
# (sandbox_id_base, sandbox_id_count). Go builds run as "nobody", on the host, outside cgroups.
SANDBOX_ID_BASE = 0x70000000
SANDBOX_ID_COUNT = 65536
NOBODY = 65534


def is_sandbox_uid(uid):
    return SANDBOX_ID_BASE <= uid < SANDBOX_ID_BASE + SANDBOX_ID_COUNT

SERVER = None


def start_server():
    global SERVER
    if SERVER is not None:
        return SERVER
    wisp_fixture.require_root()
    server = wisp_fixture.WispServer(env={
        "WISP_SANDBOX_TMP_MB": str(TMP_MB),
        "WISP_SANDBOX_PIDS_LIMIT": str(PIDS_LIMIT),
        "WISP_INIT_TIMEOUT_SECONDS": str(INIT_TIMEOUT_S),
    })
    try:
        server.start()
    except AssertionError as e:
        server.cleanup()
        if "cannot enforce sandbox limits" in str(e):
            # No usable memory and pids cgroups on this machine (e.g. a container without
            # cgroup delegation): wispd rightly refuses to run sandboxes unconfined.
            raise unittest.SkipTest(f"wispd cannot enforce limits on this machine: {e}")
        raise
    except BaseException:
        server.cleanup()
        raise
    SERVER = server
    return server


def stop_server():
    global SERVER
    if SERVER is None:
        return
    try:
        SERVER.stop()
    finally:
        SERVER.kill()
        SERVER.cleanup()
        SERVER = None


def syscall_numbers():
    """x86_64 syscall numbers from the kernel headers on the host."""
    if not os.path.exists(UNISTD):
        raise unittest.SkipTest(f"needs the kernel's syscall numbers in {UNISTD} (Debian package "
                                "linux-libc-dev)")
    numbers = {}
    with open(UNISTD) as f:
        for m in re.finditer(r"#define __NR_(\w+)\s+(\d+)", f.read()):
            numbers[m.group(1)] = int(m.group(2))
    return numbers


def denied_syscalls():
    """Every syscall the policy lists with `errno EPERM` (documentation rules)."""
    names = []
    with open(POLICY_PATH) as f:
        for line in f:
            body = line.split("#", 1)[0].split()
            if len(body) >= 3 and body[0] == "errno" and body[1] == "EPERM" and "if" not in body:
                names.extend(body[2:])
    return names


# Mounts other programs on a shared machine make and remove at any time: network namespaces
# pinned by `ip netns` (other test runs make them) and login sessions' runtime directories. No
# sandbox can mount anything on the host, let alone these.
FOREIGN_MOUNT_PREFIXES = ("/run/netns/", "/run/user/")


def host_mounts():
    with open("/proc/self/mountinfo") as f:
        fields = (line.split() for line in f)
        return sorted(" ".join(m[3:5]) for m in fields
                      if not m[4].startswith(FOREIGN_MOUNT_PREFIXES))


def cgroup_hierarchies():
    """(name, mount) of each hierarchy wispd makes groups in: the unified one on cgroup v2,
    memory, pids and cpu on v1 (where the machine has them)."""
    if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")):
        return [("unified", CGROUP_ROOT)]
    return [(c, os.path.join(CGROUP_ROOT, c)) for c in ("memory", "pids", "cpu")
            if os.path.isdir(os.path.join(CGROUP_ROOT, c))]


def instance_groups(wispd_pid):
    """Instance cgroups under wisp/<wispd pid>/, per hierarchy."""
    groups = set()
    for controller, mount in cgroup_hierarchies():
        base = os.path.join(mount, "wisp", str(wispd_pid))
        if os.path.isdir(base):
            groups |= {(controller, d) for d in os.listdir(base)
                       if os.path.isdir(os.path.join(base, d))}
    return groups


def group_procs(wispd_pid, instance_id):
    pids = set()
    for _, mount in cgroup_hierarchies():
        path = os.path.join(mount, "wisp", str(wispd_pid), instance_id, "cgroup.procs")
        try:
            with open(path) as f:
                pids |= {int(p) for p in f.read().split()}
        except OSError:
            # Gone, or being removed right now (a group in removal reads as ENODEV): either
            # way it holds no process any more.
            pass
    return pids


def is_prewarmed(wispd_pid, instance_id):
    for pid in group_procs(wispd_pid, instance_id):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if b"WISP_PREWARMED=1" in f.read().split(b"\0"):
                    return True
        except OSError:
            pass
    return False


def proc_status(pid_or_task_path):
    fields = {}
    try:
        with open(os.path.join(pid_or_task_path, "status")) as f:
            for line in f:
                k, _, v = line.partition(":")
                fields[k] = v.strip()
    except OSError:  # gone, or going (a dying process's files fail with ESRCH or ENODEV)
        return None
    return fields


INNOCENT_CODE = "def handler(event, context):\n    return {'echo': event.get('n')}\n"


class SecurityTestCase(unittest.TestCase):
    """A hostile case with the four checks. Subclasses call `run_hostile()` and
    `assert_host_clean()`."""

    @classmethod
    def setUpClass(cls):
        cls.wisp = start_server()
        cls.innocent = cls.deploy_fn(INNOCENT_CODE, runtime="python", name_prefix="innocent")
        # Warm it, so its latency below measures the platform, not a cold start.
        r = cls.wisp.invoke(cls.innocent, {"n": 0})
        assert r.status == 200 and r.json["status"] == "success", r

    @classmethod
    def tearDownClass(cls):
        cls.wisp.request("DELETE", f"/v1/functions/{cls.innocent}")

    _counter = 0

    @classmethod
    def deploy_fn(cls, code, runtime="python", name_prefix="hostile", **spec):
        SecurityTestCase._counter += 1
        spec.setdefault("name", f"{name_prefix}-{cls.__name__.lower()}-{SecurityTestCase._counter}")
        fid = cls.wisp.create(runtime=runtime, code=code, **spec)
        cls.wisp.wait_state(fid, timeout=15)
        return fid

    def deploy(self, code, runtime="python", expect_state="ready", **spec):
        fid = self.deploy_fn(code, runtime=runtime, **spec)
        self.hostile_ids.append(fid)
        if expect_state:
            item = self.wisp.function(fid)
            self.assertEqual(item["state"], expect_state, item)
        return fid

    def setUp(self):
        self.hostile_ids = []
        self.mounts_before = host_mounts()
        self.innocent_instances = self.instance_ids(self.innocent)

    def instance_ids(self, fid):
        item = self.wisp.function(fid)
        return {i["id"] for i in item.get("instances", [])}

    # -- check 4: the innocent function, at the same time --------------------------------

    def run_hostile(self, fid, event=None, innocent_calls=5):
        """Invokes `fid` while the innocent function is invoked `innocent_calls` times from
        another thread; asserts each innocent answer and its latency. Returns the hostile
        response and the innocent latencies."""
        result = {}

        def hostile():
            client = self.wisp.client(timeout=120)
            try:
                result["r"] = self.wisp.invoke(fid, event or {}, client=client)
            except Exception as e:  # reported below, in the test's thread
                result["e"] = e
            finally:
                client.close()

        t = threading.Thread(target=hostile)
        t.start()
        time.sleep(0.2)  # let the hostile function get going
        latencies = []
        client = self.wisp.client(timeout=30)
        try:
            for n in range(1, innocent_calls + 1):
                t0 = time.monotonic()
                r = self.wisp.invoke(self.innocent, {"n": n}, client=client)
                latencies.append(time.monotonic() - t0)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json["status"], "success", r)
                self.assertEqual(r.json["response"], {"echo": n})
                time.sleep(0.1)
        finally:
            client.close()
        t.join(timeout=150)
        self.assertFalse(t.is_alive(), "hostile invocation never returned")
        if "e" in result:
            raise result["e"]
        self.assertLess(max(latencies), INNOCENT_MAX_SECONDS,
                        f"innocent function too slow next to a hostile one: {latencies}")
        return result["r"], latencies

    def assertCallerError(self, r, status="error", message=None):
        """Check 2: a typed error document, never a wispd stack."""
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], status, r)
        resp = r.json["response"]
        self.assertIsInstance(resp, dict, r)
        for key in ("errorType", "errorMessage"):
            self.assertIn(key, resp, resp)
        if message is not None:
            self.assertIn(message, resp["errorMessage"], resp)
        self.assertNotIn(".cc:", r.body.decode(errors="replace"))
        return resp

    # -- check 3: the host is clean afterwards --------------------------------------------

    def assert_host_clean(self, delete=True):
        """Deletes the hostile functions (ending their instances) and checks that nothing of
        them remains: no process, no cgroup, no host mount, no file in the sandbox root."""
        wispd_pid = self.wisp.proc.pid
        if delete:
            for fid in self.hostile_ids:
                self.wisp.request("DELETE", f"/v1/functions/{fid}")
        deadline = time.monotonic() + 10
        while True:
            innocent_now = self.instance_ids(self.innocent)
            groups = {g for g in instance_groups(wispd_pid) if g[1] not in innocent_now}
            # Generic prewarmed instances (no function yet; the pools grow with demand, so some
            # may still be loading) belong to wispd, not to a test; at most as many as
            # /v1/instances lists as prewarmed, and each one marked so in its runtime's
            # environment.
            instances = self.wisp.request("GET", "/v1/instances").json.get("items", [])
            generic = sum(1 for i in instances if i.get("prewarmed"))
            prewarmed = {g for g in groups if is_prewarmed(wispd_pid, g[1])}
            if len({g[1] for g in prewarmed}) <= generic:
                groups -= prewarmed
            stray_groups = groups
            stray_procs = set()
            for _, instance_id in stray_groups:
                stray_procs |= group_procs(wispd_pid, instance_id)
            # Processes running as a sandbox uid outside every wisp cgroup would be an escape
            # from the cgroup. The real uid: the launcher's effective uid is an instance's for
            # the moment of a clone, and so is the new child's until it is in its cgroup. (Other wispds on this machine, e.g. a concurrent e2e run, have
            # groups of their own under wisp/.)
            outside = set()
            for pid in wisp_fixture.all_pids():
                st = proc_status(f"/proc/{pid}")
                if st and is_sandbox_uid(int(st.get("Uid", "-1").split()[0])):
                    cgroups = wisp_fixture.live_cgroups(pid)
                    if cgroups is not None and "/wisp/" not in cgroups:
                        outside.add(pid)
            if not stray_groups and not stray_procs and not outside:
                break
            if time.monotonic() > deadline:
                self.fail(f"left behind: groups {sorted(stray_groups)}, processes "
                          f"{sorted(stray_procs)}, sandbox-uid processes outside cgroups "
                          f"{sorted(outside)}")
            time.sleep(0.05)
        self.assertEqual(host_mounts(), self.mounts_before, "host mount table changed")
        root = os.path.join(self.wisp.data_dir, "sandbox", "root")
        self.assertEqual(os.listdir(root), [], "files left in the sandbox root dir")
        self.assertEqual(self.wisp.health()["status"], "ok")
