"""Hostile functions, Escapes section (cases 8-15): the sandbox sees only its own world, cannot
change it, cannot make the syscalls it has no business making, and cannot reach the control
plane. Each errno is checked inside, the caller's result outside, the host afterwards, and an
innocent function alongside."""

import json
import os
import socket
import threading
import time
import unittest

import sandbox_fixture as sf
from sandbox_fixture import SecurityTestCase


def tearDownModule():
    sf.stop_server()


# Helpers every probe function starts with: raw syscalls through ctypes, errno names out.
PROBE_PRELUDE = r'''
import ctypes, errno, json, os, socket
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def err(e):
    return errno.errorcode.get(e, str(e))

def sys_errno(nr, *args):
    ctypes.set_errno(0)
    rc = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    if rc == 0 and nr in (56, 57, 58):  # a clone/fork that got through: never run twice
        os._exit(0)
    return "OK" if rc >= 0 else err(ctypes.get_errno())

def attempt(fn):
    try:
        fn()
        return "OK"
    except OSError as e:
        return err(e.errno)
'''


class HostFilesTest(SecurityTestCase):
    """8. Host files, /proc/1/root, ../../.., inherited fds, mountinfo: only the sandbox."""

    def test_only_the_sandbox_is_visible(self):
        fid = self.deploy(PROBE_PRELUDE + r'''
def handler(event, context=None):
    out = {}
    out["shadow"] = attempt(lambda: open("/etc/shadow").read())
    out["proc1_shadow"] = attempt(lambda: open("/proc/1/root/etc/shadow").read())
    out["store"] = attempt(lambda: open(event["store"]).read())
    out["dotdot"] = sorted(os.listdir("/var/task/../../../../.."))
    out["proc_pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass
    out["fds"] = fds
    with open("/proc/self/mountinfo") as f:
        out["mountpoints"] = sorted({line.split()[4] for line in f})
    out["sys"] = attempt(lambda: os.listdir("/sys"))
    out["hostname"] = socket.gethostname()
    return out
''')
        store = os.path.join(self.wisp.data_dir, "wisp.db")
        r, _ = self.run_hostile(fid, {"store": store})
        self.assertEqual(r.json["status"], "success", r)
        out = r.json["response"]
        self.assertEqual(out["shadow"], "ENOENT")
        self.assertIn(out["proc1_shadow"], ("EACCES", "ENOENT"))
        self.assertEqual(out["store"], "ENOENT")
        self.assertTrue(set(out["dotdot"]) <= {"bin", "dev", "etc", "lib", "lib32", "lib64",
                                                "libx32", "opt", "proc", "sbin", "tmp", "usr",
                                                "var"}, out["dotdot"])
        self.assertNotIn("home", out["dotdot"])
        self.assertNotIn("root", out["dotdot"])
        self.assertLess(max(out["proc_pids"]), 50, "host processes visible")
        # stdin is /dev/null, stdout/stderr the log pipe; the rest are the shim's own socket,
        # and nothing the launcher or wispd had open.
        self.assertEqual(out["fds"]["0"], "/dev/null")
        for fd, target in out["fds"].items():
            self.assertRegex(target, r"^(/dev/null|pipe:\[\d+\]|socket:\[\d+\]|/proc/.*)$",
                             (fd, target))
        allowed = ("/", "/usr", "/etc/", "/var/task", "/opt/wisp/runtime", "/tmp", "/proc",
                   "/dev")
        for mp in out["mountpoints"]:
            self.assertTrue(mp == "/" or mp.startswith(allowed[1:]), mp)
        self.assertEqual(out["sys"], "ENOENT")
        self.assertEqual(out["hostname"], "wisp")
        self.assert_host_clean()


class ReadOnlyTest(SecurityTestCase):
    """9. Remount the root read-write, write under /usr or /var/task -> EROFS or EPERM."""

    def test_cannot_change_its_root(self):
        fid = self.deploy(PROBE_PRELUDE + r'''
import ctypes
def handler(event, context=None):
    out = {}
    MS_REMOUNT, MS_BIND = 32, 4096
    def remount(path):
        if libc.mount(None, path.encode(), None, MS_REMOUNT | MS_BIND, None) != 0:
            raise OSError(ctypes.get_errno(), "mount")
    out["remount_root"] = attempt(lambda: remount("/"))
    out["remount_usr"] = attempt(lambda: remount("/usr"))
    for path in ("/usr/evil", "/var/task/evil", "/evil", "/etc/evil", "/opt/wisp/runtime/evil",
                 "/proc/sys/kernel/hostname"):
        out[path] = attempt(lambda: open(path, "w").write("x"))
    out["chmod_task"] = attempt(lambda: os.chmod("/var/task", 0o777))
    out["tmp"] = attempt(lambda: open("/tmp/ok", "w").write("x"))
    return out
''')
        r, _ = self.run_hostile(fid)
        self.assertEqual(r.json["status"], "success", r)
        out = r.json["response"]
        self.assertEqual(out["remount_root"], "EPERM")
        self.assertEqual(out["remount_usr"], "EPERM")
        for path in ("/usr/evil", "/var/task/evil", "/evil", "/etc/evil",
                     "/opt/wisp/runtime/evil", "/proc/sys/kernel/hostname"):
            self.assertIn(out[path], ("EROFS", "EACCES", "EPERM"), (path, out))
        self.assertIn(out["chmod_task"], ("EROFS", "EPERM"))
        self.assertEqual(out["tmp"], "OK")
        self.assert_host_clean()


class SyscallTest(SecurityTestCase):
    """10, 11, 14. Syscalls with no business in a function fail with their errno; the sandbox
    survives. io_uring is ENOSYS so Node falls back. Raw/packet/netfilter sockets: EPERM."""

    def test_denied_syscalls(self):
        numbers = sf.syscall_numbers()
        denied = [n for n in sf.denied_syscalls() if n in numbers]
        required = ["mount", "umount2", "pivot_root", "unshare", "setns", "keyctl", "add_key",
                    "request_key", "bpf", "perf_event_open", "userfaultfd", "ptrace",
                    "process_vm_readv", "process_vm_writev", "open_by_handle_at",
                    "name_to_handle_at", "kexec_load", "kexec_file_load", "init_module",
                    "finit_module", "delete_module", "reboot", "settimeofday", "clock_settime",
                    "adjtimex", "acct", "swapon", "swapoff", "chroot", "syslog", "quotactl",
                    "iopl", "ioperm", "lookup_dcookie"]
        for name in required:
            self.assertIn(name, denied, f"{name} is not in the policy's deny list")
        probes = {name: numbers[name] for name in denied}
        probes["io_uring_setup"] = numbers["io_uring_setup"]
        probes["io_uring_enter"] = numbers["io_uring_enter"]
        probes["io_uring_register"] = numbers["io_uring_register"]
        probes["clone3"] = numbers["clone3"]
        fid = self.deploy(PROBE_PRELUDE + r'''
def handler(event, context=None):
    out = {name: sys_errno(nr) for name, nr in event["probes"].items()}
    CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWNS, SIGCHLD = 0x10000000, 0x40000000, 0x20000, 17
    out["clone(NEWUSER)"] = sys_errno(56, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)
    out["clone(NEWNET)"] = sys_errno(56, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0)
    out["clone(NEWNS)"] = sys_errno(56, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0)
    out["x32 getpid"] = sys_errno(0x40000000 | 39)
    out["getpid"] = sys_errno(39)
    def sock(*a):
        socket.socket(*a).close()
    out["raw icmp"] = attempt(lambda: sock(socket.AF_INET, socket.SOCK_RAW, 1))
    out["raw ipv6"] = attempt(lambda: sock(socket.AF_INET6, socket.SOCK_RAW, 58))
    out["packet"] = attempt(lambda: sock(socket.AF_PACKET, socket.SOCK_RAW, 0))
    out["packet dgram"] = attempt(lambda: sock(socket.AF_PACKET, socket.SOCK_DGRAM, 0))
    out["netlink netfilter"] = attempt(lambda: sock(socket.AF_NETLINK, socket.SOCK_RAW, 12))
    out["netlink audit"] = attempt(lambda: sock(socket.AF_NETLINK, socket.SOCK_RAW, 9))
    out["netlink route"] = attempt(lambda: sock(socket.AF_NETLINK, socket.SOCK_RAW, 0))
    out["tcp"] = attempt(lambda: sock(socket.AF_INET, socket.SOCK_STREAM))
    # Protocols besides TCP and UDP on stream and datagram sockets: MPTCP (262), SCTP (132),
    # UDP-Lite (136). Refused by the filter whether or not this kernel has them.
    flags = socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
    for family, fname in ((socket.AF_INET, "4"), (socket.AF_INET6, "6")):
        out["mptcp" + fname] = attempt(lambda: sock(family, socket.SOCK_STREAM, 262))
        out["sctp" + fname] = attempt(lambda: sock(family, socket.SOCK_STREAM, 132))
        out["sctp seqpacket" + fname] = attempt(lambda: sock(family, socket.SOCK_SEQPACKET, 132))
        out["udplite" + fname] = attempt(lambda: sock(family, socket.SOCK_DGRAM | flags, 136))
        out["tcp 6 " + fname] = attempt(lambda: sock(family, socket.SOCK_STREAM | flags, 6))
        out["udp 0 " + fname] = attempt(lambda: sock(family, socket.SOCK_DGRAM, 0))
        out["udp 17 " + fname] = attempt(lambda: sock(family, socket.SOCK_DGRAM | flags, 17))
    out["still alive"] = True
    return out
''')
        r, _ = self.run_hostile(fid, {"probes": probes})
        self.assertEqual(r.json["status"], "success", r)
        out = r.json["response"]
        for name in denied:
            self.assertEqual(out[name], "EPERM", name)
        for name in ("io_uring_setup", "io_uring_enter", "io_uring_register", "clone3",
                     "x32 getpid"):
            self.assertEqual(out[name], "ENOSYS", name)
        for name in ("clone(NEWUSER)", "clone(NEWNET)", "clone(NEWNS)", "raw icmp", "raw ipv6",
                     "packet", "packet dgram", "netlink netfilter", "netlink audit"):
            self.assertEqual(out[name], "EPERM", name)
        for name in ("getpid", "netlink route", "tcp", "tcp 6 4", "udp 0 4", "udp 17 4"):
            self.assertEqual(out[name], "OK", name)
        for name in ("tcp 6 6", "udp 0 6", "udp 17 6"):
            # EAFNOSUPPORT: a kernel booted without IPv6, not the filter.
            self.assertIn(out[name], ("OK", "EAFNOSUPPORT"), name)
        for family in "46":
            for name in ("mptcp", "sctp", "sctp seqpacket", "udplite"):
                self.assertEqual(out[name + family], "EPERM", name + family)
        self.assertTrue(out["still alive"])
        self.assert_host_clean()

    def test_node_survives_io_uring_probe(self):
        # UV_USE_IO_URING=1 makes libuv try io_uring for file I/O; ENOSYS sends it back to its
        # thread pool and Node keeps working.
        fid = self.deploy(
            "const fs = require('fs/promises');\n"
            "exports.handler = async () => {\n"
            "  await fs.writeFile('/tmp/a', 'x'.repeat(100000));\n"
            "  const back = await fs.readFile('/tmp/a', 'utf8');\n"
            "  return {len: back.length, uring: process.env.UV_USE_IO_URING};\n"
            "};\n", runtime="node", env={"UV_USE_IO_URING": "1"})
        r, _ = self.run_hostile(fid)
        self.assertEqual(r.json["status"], "success", r)
        self.assertEqual(r.json["response"], {"len": 100000, "uring": "1"})
        self.assert_host_clean()


class ThreadConfinementTest(SecurityTestCase):
    """12. Every thread of every sandbox process, including threads created late, shows
    Seccomp: 2 and NoNewPrivs: 1 and no capabilities; setuid binaries gain nothing."""

    def test_every_thread_late_ones_too(self):
        fid = self.deploy(
            "const {Worker} = require('worker_threads');\n"
            "const cp = require('child_process');\n"
            "exports.handler = async (event) => {\n"
            "  if (event.setuid) {\n"
            "    const p = cp.spawn('/usr/bin/su', ['root', '-c', 'true'], {stdio: 'pipe'});\n"
            "    let status = '';\n"
            "    for (let i = 0; i < 200 && !status.includes('Name:\\tsu'); i++) {\n"
            "      try { status = require('fs').readFileSync(`/proc/${p.pid}/status`, 'utf8'); }"
            "      catch (e) { break; }\n"
            "      await new Promise(r => setTimeout(r, 5));\n"
            "    }\n"
            "    p.kill();\n"
            "    const f = k => (status.split('\\n').find(l => l.startsWith(k + ':')) || '')"
            "        .slice(k.length + 1).trim();\n"
            "    return {name: f('Name'), uid: f('Uid'), capeff: f('CapEff'), capprm: f('CapPrm')};\n"
            "  }\n"
            "  for (let i = 0; i < 3; i++) new Worker('setInterval(() => {}, 1000)', {eval: true});\n"
            "  cp.spawn('/bin/sleep', ['1000']);\n"
            "  await new Promise(r => setTimeout(r, 300));\n"
            "  return 'threads started';\n"
            "};\n", runtime="node")
        r, _ = self.run_hostile(fid)
        self.assertEqual(r.json["response"], "threads started")
        ids = self.instance_ids(fid)
        self.assertEqual(len(ids), 1)
        procs = sf.group_procs(self.wisp.proc.pid, ids.pop())
        threads = 0
        uids = set()
        for pid in procs:
            for task in os.listdir(f"/proc/{pid}/task"):
                st = sf.proc_status(f"/proc/{pid}/task/{task}")
                if st is None:
                    continue
                where = f"{pid}/{task} {st['Name']}"
                self.assertEqual(st["Seccomp"], "2", where)
                self.assertEqual(st["NoNewPrivs"], "1", where)
                for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
                    self.assertEqual(st[cap], "0000000000000000", (where, cap))
                uids.update(int(u) for u in st["Uid"].split())  # real, effective, saved, fs
                threads += 1
        self.assertGreaterEqual(threads, 10)  # node ~7, three workers, sleep, init
        # The instance's own unprivileged host uid, the same for every thread and process.
        self.assertEqual(len(uids), 1, uids)
        uid = uids.pop()
        self.assertTrue(sf.SANDBOX_ID_BASE <= uid < sf.SANDBOX_ID_BASE + sf.SANDBOX_ID_COUNT,
                        uid)

        r = self.wisp.invoke(fid, {"setuid": True})
        self.assertEqual(r.json["status"], "success", r)
        su = r.json["response"]
        # su is setuid root and waits for a password: caught running, it gained nothing.
        self.assertEqual(su["name"], "su", su)
        self.assertEqual(su["capeff"], "0000000000000000", su)
        self.assertEqual(su["capprm"], "0000000000000000", su)
        self.assertEqual(su["uid"].split(), ["0", "0", "0", "0"], su)  # its own uid outside
        self.assert_host_clean()


class SignalTest(SecurityTestCase):
    """13. kill(-1, SIGKILL), signals to pid 1 -> only the sandbox's own processes."""

    def test_kill_everything(self):
        victim = self.deploy("def handler(event, context=None):\n    return 'alive'\n")
        self.wisp.invoke(victim, {})
        victim_pids = {i["pid"] for i in self.wisp.function(victim)["instances"]}
        fid = self.deploy(PROBE_PRELUDE + r'''
import signal, subprocess, time
def handler(event, context=None):
    child = subprocess.Popen(["/bin/sleep", "1000"])
    out = {"pid": os.getpid()}
    out["kill init"] = attempt(lambda: os.kill(1, signal.SIGKILL))
    out["kill -1"] = attempt(lambda: os.kill(-1, signal.SIGKILL))
    time.sleep(0.1)
    out["child"] = child.poll()
    if event.get("self"):
        os.kill(os.getpid(), signal.SIGKILL)
    return out
''')
        r, _ = self.run_hostile(fid)
        self.assertEqual(r.json["status"], "success", r)
        out = r.json["response"]
        self.assertEqual(out["kill -1"], "OK")
        self.assertEqual(out["child"], -9)
        self.assertEqual(out["pid"], 2)  # init is 1 and ignores what its namespace sends it
        r2, _ = self.run_hostile(fid, {"self": True})
        self.assertCallerError(r2, message="runtime killed by signal 9 (SIGKILL)")
        # Nothing outside was touched: the other function's instance and wispd live on.
        self.assertEqual(self.wisp.invoke(victim, {}).json["response"], "alive")
        self.assertEqual({i["pid"] for i in self.wisp.function(victim)["instances"]},
                         victim_pids)
        self.assertIsNone(self.wisp.proc.poll())
        self.assert_host_clean()


class ControlPlaneTest(SecurityTestCase):
    """15. wispd's API, the host's addresses, 169.254.169.254, the store, other sandboxes'
    endpoints, host abstract sockets -> unreachable."""

    @staticmethod
    def host_addresses():
        addrs = set()
        with open("/proc/net/fib_trie") as f:
            lines = f.read().splitlines()
        for i, line in enumerate(lines):
            if "/32 host LOCAL" in line and i > 0:
                addrs.add(lines[i - 1].split()[-1])
        return sorted(addrs)

    def test_unreachable(self):
        # A host listener on every address and a host abstract unix socket, as bait.
        bait = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        bait.bind(("0.0.0.0", 0))
        bait.listen()
        bait_port = bait.getsockname()[1]
        abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        abstract.bind(f"\0wisp-security-bait-{os.getpid()}")
        abstract.listen()
        other = self.deploy("def handler(event, context=None):\n    return 'other'\n")
        self.wisp.invoke(other, {})
        fid = self.deploy(PROBE_PRELUDE + r'''
def connect(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect((host, port))
        return "OK"
    except socket.timeout:
        return "TIMEOUT"
    except OSError as e:
        return err(e.errno)
    finally:
        s.close()

def handler(event, context=None):
    out = {}
    out["api"] = connect("127.0.0.1", event["api_port"])
    out["bait"] = {a: connect(a, event["bait_port"]) for a in event["host_addrs"]}
    out["metadata"] = connect("169.254.169.254", 80)
    out["public"] = connect("1.1.1.1", 443)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    out["abstract"] = attempt(lambda: s.connect(event["abstract"]))
    with open("/proc/net/tcp") as f:
        listening = [l.split()[1] for l in f.read().splitlines()[1:] if l.split()[3] == "0A"]
    out["listening"] = listening
    out["own endpoint"] = connect("127.0.0.1", 9001)
    with open("/proc/net/dev") as f:
        out["interfaces"] = sorted(l.split(":")[0].strip() for l in f.read().splitlines()[2:])
    return out
''')
        try:
            r, _ = self.run_hostile(fid, {
                "api_port": self.wisp.port, "bait_port": bait_port,
                "host_addrs": self.host_addresses(),
                "abstract": f"\0wisp-security-bait-{os.getpid()}"})
        finally:
            bait.close()
            abstract.close()
        self.assertEqual(r.json["status"], "success", r)
        out = r.json["response"]
        self.assertEqual(out["api"], "ECONNREFUSED")
        for addr, res in out["bait"].items():
            expected = "ECONNREFUSED" if addr.startswith("127.") else "ENETUNREACH"
            self.assertEqual(res, expected, addr)
        self.assertEqual(out["metadata"], "ENETUNREACH")
        self.assertEqual(out["public"], "ENETUNREACH")
        self.assertEqual(out["abstract"], "ECONNREFUSED")
        self.assertEqual(out["interfaces"], ["lo"])
        # One listener inside: the sandbox's own Runtime API endpoint (0100007F:2329), which
        # answers; other sandboxes' endpoints live in other network namespaces.
        self.assertEqual(out["listening"], ["0100007F:2329"])
        self.assertEqual(out["own endpoint"], "OK")
        self.assertEqual(self.wisp.invoke(other, {}).json["response"], "other")
        self.assert_host_clean()


if __name__ == "__main__":
    unittest.main()
