"""Hostile functions, Resources section (cases 1-7): each limit holds, the caller gets a clear
error, the host is clean afterwards and an innocent function keeps answering in time."""

import os
import time
import unittest

import sandbox_fixture as sf
from sandbox_fixture import SecurityTestCase


def tearDownModule():
    sf.stop_server()


class ForkAndThreadBombTest(SecurityTestCase):
    """1. Fork bomb, thread bomb, child_process loop -> EAGAIN at the pids limit."""

    def test_python_fork_bomb(self):
        fid = self.deploy(
            "import os, time\n"
            "def handler(event, context=None):\n"
            "    n = 0\n"
            "    while True:\n"
            "        try:\n"
            "            pid = os.fork()\n"
            "        except OSError as e:\n"
            "            raise OSError(e.errno, f'fork failed after {n} children: {e.strerror}')\n"
            "        if pid == 0:\n"
            "            time.sleep(1000)\n"
            "            os._exit(0)\n"
            "        n += 1\n")
        r, _ = self.run_hostile(fid)
        resp = self.assertCallerError(r, message="Resource temporarily unavailable")
        self.assertIn("fork failed after", resp["errorMessage"])
        n = int(resp["errorMessage"].split("after ")[1].split()[0])
        self.assertLess(n, sf.PIDS_LIMIT)
        self.assert_host_clean()

    def test_node_thread_bomb_and_child_process_loop(self):
        fid = self.deploy(
            "const cp = require('child_process');\n"
            "exports.handler = async (event) => {\n"
            "  const kids = [];\n"
            "  for (let i = 0; i < 1000; i++) {\n"
            "    const r = cp.spawnSync('/bin/sleep', ['0.01']);\n"
            "    if (r.error) return {failed_after: i, code: r.error.code};\n"
            "    kids.push(cp.spawn('/bin/sleep', ['1000']));\n"
            "    await new Promise(r => setImmediate(r));\n"
            "  }\n"
            "  return {failed_after: null};\n"
            "};\n", runtime="node")
        r, _ = self.run_hostile(fid)
        self.assertEqual(r.json["status"], "success", r)
        self.assertEqual(r.json["response"]["code"], "EAGAIN", r)
        self.assertLess(r.json["response"]["failed_after"], sf.PIDS_LIMIT)
        self.assert_host_clean()

    def test_python_thread_bomb(self):
        fid = self.deploy(
            "import threading, time\n"
            "def handler(event, context=None):\n"
            "    n = 0\n"
            "    try:\n"
            "        while True:\n"
            "            threading.Thread(target=time.sleep, args=(1000,), daemon=True).start()\n"
            "            n += 1\n"
            "    except RuntimeError as e:\n"
            "        return {'threads': n, 'error': str(e)}\n")
        r, _ = self.run_hostile(fid)
        self.assertEqual(r.json["status"], "success", r)
        self.assertEqual(r.json["response"]["error"], "can't start new thread")
        self.assertLess(r.json["response"]["threads"], sf.PIDS_LIMIT)
        self.assert_host_clean()


class MemoryTest(SecurityTestCase):
    """2. Allocate twice the memory limit -> the whole group is OOM-killed."""

    def test_allocate_twice_the_limit(self):
        fid = self.deploy(
            "def handler(event, context=None):\n"
            "    if event.get('big'):\n"
            "        b = bytearray(256 << 20)\n"
            "        for i in range(0, len(b), 4096): b[i] = 1\n"
            "    return 'small'\n", memory_mb=128)
        self.wisp.invoke(fid, {})
        before = {i["pid"] for i in self.wisp.function(fid)["instances"]}
        for pid in before:  # the host's OOM killer prefers sandboxes to wispd
            with open(f"/proc/{pid}/oom_score_adj") as f:
                self.assertEqual(f.read().strip(), "1000")
        with open(f"/proc/{self.wisp.proc.pid}/oom_score_adj") as f:
            self.assertLessEqual(int(f.read()), 0)
        r, _ = self.run_hostile(fid, {"big": True})
        self.assertCallerError(r, message="out of memory (limit 128 MB)")
        # Not reused: the next call gets a fresh instance.
        again = self.wisp.invoke(fid, {})
        self.assertEqual(again.json["response"], "small")
        after = {i["pid"] for i in self.wisp.function(fid)["instances"]}
        self.assertFalse(before & after, "the OOM-killed instance served again")
        self.assert_host_clean()

    def test_oom_victim_is_a_child(self):
        # The kernel picks the biggest process, here a child; the instance must still end as a
        # whole (memory.oom.group on v2; the launcher's OOM event on v1).
        fid = self.deploy(
            "const cp = require('child_process');\n"
            "exports.handler = async () => {\n"
            "  cp.spawnSync('/usr/bin/python3', ['-c', 'b = bytearray(512 << 20)']);\n"
            "  await new Promise(r => setTimeout(r, 5000));\n"
            "  return 'survived';\n"
            "};\n", runtime="node", memory_mb=128)
        r, _ = self.run_hostile(fid)
        self.assertCallerError(r, message="out of memory")
        self.assert_host_clean()


class TmpTest(SecurityTestCase):
    """3. Write 10 GB, or a million small files, into /tmp -> ENOSPC at the tmpfs cap."""

    def host_free(self):
        st = os.statvfs(self.wisp.data_dir)
        return st.f_bavail * st.f_frsize

    def test_fill_tmp(self):
        fid = self.deploy(
            "import errno, os\n"
            "def handler(event, context=None):\n"
            "    out = {}\n"
            "    chunk = b'x' * (1 << 20)\n"
            "    try:\n"
            "        with open('/tmp/big', 'wb') as f:\n"
            "            for _ in range(10 << 10):\n"
            "                f.write(chunk)\n"
            "    except OSError as e:\n"
            "        out['big'] = errno.errorcode[e.errno]\n"
            "    out['big_mb'] = os.path.getsize('/tmp/big') >> 20\n"
            "    os.unlink('/tmp/big')\n"
            "    n = 0\n"
            "    try:\n"
            "        for n in range(1000000):\n"
            "            open(f'/tmp/f{n}', 'w').close()\n"
            "    except OSError as e:\n"
            "        out['small'] = errno.errorcode[e.errno]\n"
            "    out['files'] = n\n"
            "    return out\n", memory_mb=512, timeout_seconds=60)
        free_before = self.host_free()
        r, _ = self.run_hostile(fid)
        self.assertEqual(r.json["status"], "success", r)
        out = r.json["response"]
        self.assertEqual(out["big"], "ENOSPC", out)
        self.assertLessEqual(out["big_mb"], sf.TMP_MB)
        self.assertEqual(out["small"], "ENOSPC", out)
        self.assertLess(out["files"], 1000000)
        # Host disk unchanged (within noise of the store's own writes).
        self.assertLess(abs(self.host_free() - free_before), 32 << 20)
        self.assert_host_clean()


class FileDescriptorTest(SecurityTestCase):
    """4. Open fds until it fails -> EMFILE inside; the runtime's connection keeps working."""

    def test_open_until_emfile(self):
        fid = self.deploy(
            "import errno\n"
            "held = []\n"
            "def handler(event, context=None):\n"
            "    try:\n"
            "        while True:\n"
            "            held.append(open('/dev/null'))\n"
            "    except OSError as e:\n"
            "        return {'errno': errno.errorcode[e.errno], 'open': len(held)}\n")
        r, _ = self.run_hostile(fid)
        self.assertEqual(r.json["status"], "success", r)
        self.assertEqual(r.json["response"]["errno"], "EMFILE")
        self.assertLess(r.json["response"]["open"], 1024)
        # Still every fd taken, and the shim's connection still carries the next call.
        r2 = self.wisp.invoke(fid, {})
        self.assertEqual(r2.json["status"], "success", r2)
        self.assertEqual(r2.json["response"]["errno"], "EMFILE")
        self.assert_host_clean()


class DeadlineTest(SecurityTestCase):
    """5. Spin the CPU, or await a promise that never resolves -> killed at the deadline."""

    def test_spin_and_hang(self):
        for runtime, code in (
                ("node", "exports.handler = async () => { while (true) {} };"),
                ("python", "def handler(event, context=None):\n    while True: pass\n"),
                ("node", "exports.handler = () => new Promise(() => {});")):
            with self.subTest(runtime=runtime, code=code):
                fid = self.deploy(code, runtime=runtime, timeout_seconds=2)
                t0 = time.monotonic()
                r, latencies = self.run_hostile(fid, innocent_calls=8)
                elapsed = time.monotonic() - t0
                self.assertCallerError(r, status="timeout", message="Task timed out after 2.00")
                self.assertLess(elapsed, 6)
        self.assert_host_clean()


class LeftoverWorkTest(SecurityTestCase):
    """6. Work left running after the handler returns cannot outlive the instance."""

    def test_double_forked_daemon_and_timers(self):
        fid = self.deploy(
            "import os, time\n"
            "def handler(event, context=None):\n"
            "    if os.fork() == 0:\n"
            "        os.setsid()\n"
            "        if os.fork() == 0:\n"
            "            while True: time.sleep(0.01)\n"
            "        os._exit(0)\n"
            "    os.wait()\n"
            "    return 'daemonised'\n")
        node = self.deploy(
            "exports.handler = async () => { setInterval(() => {}, 5);"
            " require('child_process').spawn('/bin/sleep', ['1000'], {detached: true}).unref();"
            " return 'timers'; };", runtime="node")
        r, _ = self.run_hostile(fid)
        self.assertEqual(r.json["response"], "daemonised")
        r, _ = self.run_hostile(node)
        self.assertEqual(r.json["response"], "timers")
        # While idle the daemon is still inside its instance's cgroup, with everything else.
        for f in (fid, node):
            ids = self.instance_ids(f)
            self.assertEqual(len(ids), 1)
            procs = sf.group_procs(self.wisp.proc.pid, ids.pop())
            self.assertGreaterEqual(len(procs), 3, procs)  # init, runtime, leftover
        self.assert_host_clean()  # deleting the functions ends the instances and the leftovers


class LogFloodTest(SecurityTestCase):
    """7. 100 MB of logs, or one 50 MB line -> truncated with a marker; wispd stays bounded."""

    def rss_mb(self):
        return int(sf.proc_status(f"/proc/{self.wisp.proc.pid}")["VmRSS"].split()[0]) >> 10

    def test_flood(self):
        for code in (
                "import sys\ndef handler(event, context=None):\n"
                "    line = 'y' * 1023 + '\\n'\n"
                "    for _ in range(100 * 1024): sys.stdout.write(line)\n"
                "    sys.stdout.flush()\n    return 'flooded'\n",
                "import sys\ndef handler(event, context=None):\n"
                "    chunk = 'z' * (1 << 20)\n"
                "    for _ in range(50): sys.stdout.write(chunk)\n"
                "    sys.stdout.flush()\n    return 'one line'\n"):
            with self.subTest(code=code[:60]):
                fid = self.deploy(code, memory_mb=256, timeout_seconds=60)
                rss_before = self.rss_mb()
                r, _ = self.run_hostile(fid)
                self.assertEqual(r.json["status"], "success", r)
                self.assertIn("log output truncated", "\n".join(r.json["logs"]))
                self.assertLess(len(r.body), 2 << 20)
                self.assertLess(self.rss_mb() - rss_before, 64, "wispd grew with the logs")
        self.assert_host_clean()


if __name__ == "__main__":
    unittest.main()
