"""Per-user kernel limits (issue 10, finding 3): the kernel counts inotify instances, queued
signals and pipe buffers per user, and charges what happens inside a user namespace to the
namespace's creator as well. Each sandbox is created by, and runs as, a host uid of its own, so
a function that uses up its own allowance leaves every other function, and root and every other
user on the host, theirs. Each case holds a limit from inside one function while the host and a
second function try the same thing."""

import os
import resource
import subprocess
import sys
import unittest

import sandbox_fixture as sf
from sandbox_fixture import SecurityTestCase


def tearDownModule():
    sf.stop_server()


def read_sysctl(name):
    try:
        with open(f"/proc/sys/{name}") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError):
        return None


# Every function below keeps what it takes in a module global: a warm instance holds it until
# it is deleted, while the test looks from outside.
HOLD_INOTIFY = r'''
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
held = []

def handler(event, context=None):
    error = None
    while len(held) < event["at_most"]:
        fd = libc.inotify_init1(os.O_CLOEXEC)
        if fd < 0:
            error = errno.errorcode.get(ctypes.get_errno(), "?")
            break
        held.append(fd)
    return {"held": len(held), "error": error}
'''

TRY_INOTIFY = r'''
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)

def try_inotify():
    fd = libc.inotify_init1(os.O_CLOEXEC)
    if fd < 0:
        return errno.errorcode.get(ctypes.get_errno(), "?")
    os.close(fd)
    return "OK"

def handler(event, context=None):
    return try_inotify()
'''

# 1031 is F_SETPIPE_SZ (fcntl.F_SETPIPE_SZ from Python 3.10 on).
HOLD_PIPES = r'''
import errno, fcntl, os
held = []

def handler(event, context=None):
    error = None
    resized = 0
    while len(held) < event["at_most"]:
        r, w = os.pipe()
        held.append((r, w))
        try:
            fcntl.fcntl(w, 1031, event["size"])
            resized += 1
        except OSError as e:
            error = errno.errorcode.get(e.errno, "?")
            break
    return {"resized": resized, "error": error}
'''

TRY_PIPE = r'''
import errno, fcntl, os

def try_pipe(size):
    r, w = os.pipe()
    try:
        fcntl.fcntl(w, 1031, size)
        return "OK"
    except OSError as e:
        return errno.errorcode.get(e.errno, "?")
    finally:
        os.close(r)
        os.close(w)

def handler(event, context=None):
    return try_pipe(event["size"])
'''

HOLD_SIGNALS = r'''
import ctypes, errno, os, signal
libc = ctypes.CDLL(None, use_errno=True)
queued = [0]

def handler(event, context=None):
    # Blocked, so every one stays queued (pending) as long as the instance lives.
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN])
    value = (ctypes.c_int * 2)()
    error = None
    while queued[0] < event["at_most"]:
        if libc.sigqueue(os.getpid(), int(signal.SIGRTMIN), value) != 0:
            error = errno.errorcode.get(ctypes.get_errno(), "?")
            break
        queued[0] += 1
    return {"queued": queued[0], "error": error}
'''

TRY_SIGNAL = r'''
import ctypes, errno, os, signal
libc = ctypes.CDLL(None, use_errno=True)

def try_signal():
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN])
    value = (ctypes.c_int * 2)()
    if libc.sigqueue(os.getpid(), int(signal.SIGRTMIN), value) != 0:
        return errno.errorcode.get(ctypes.get_errno(), "?")
    signal.sigtimedwait([signal.SIGRTMIN], 0)  # take it back off the queue
    return "OK"

def handler(event, context=None):
    return try_signal()
'''


def host_attempt(code, call, user=None):
    """Runs `code` + `call` in a fresh host process, as root or as `user`; returns what it
    printed."""
    def become():
        if user is not None:
            os.setgroups([])
            os.setresgid(user, user, user)
            os.setresuid(user, user, user)
    out = subprocess.run([sys.executable, "-c", code + f"\nprint({call})"],
                         capture_output=True, text=True, timeout=60, preexec_fn=become)
    if out.returncode != 0:
        raise AssertionError(f"host probe failed: {out.stderr}")
    return out.stdout.strip()


class PerUserLimitsTest(SecurityTestCase):
    def hold_and_probe(self, hold_code, try_code, event):
        """Deploys a function that takes all it can of a per-user resource and one that tries
        to take one; returns the holder's report and the second function's result."""
        hog = self.deploy(hold_code)
        other = self.deploy(try_code)
        r = self.wisp.invoke(hog, event)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "success", r)
        held = r.json["response"]
        r = self.wisp.invoke(other, event)
        self.assertEqual(r.json["status"], "success", r)
        return held, r.json["response"]

    def test_inotify_instances(self):
        limit = read_sysctl("fs/inotify/max_user_instances")
        if limit is None or limit < 1 or limit > 512:
            self.skipTest(f"fs.inotify.max_user_instances is {limit}: a function's 1024 fds "
                          "cannot reach it, so nothing here is shared")
        held, other = self.hold_and_probe(HOLD_INOTIFY, TRY_INOTIFY, {"at_most": 1000})
        # All of its own allowance, and no more: nobody else's count went into it.
        self.assertEqual(held, {"held": limit, "error": "EMFILE"})
        self.assertEqual(other, "OK", "a second function could not create an inotify instance")
        self.assertEqual(host_attempt(TRY_INOTIFY, "try_inotify()"), "OK",
                         "root on the host could not create an inotify instance")
        self.assert_host_clean()

    def test_pipe_buffers(self):
        soft = read_sysctl("fs/pipe-user-pages-soft")
        max_size = read_sysctl("fs/pipe-max-size")
        if not soft or not max_size:
            self.skipTest(f"no per-user pipe quota here (pipe-user-pages-soft {soft})")
        pages = max_size // os.sysconf("SC_PAGE_SIZE")
        pipes_needed = soft // pages + 1
        if pipes_needed > 400:  # two fds each, and a function has 1024
            self.skipTest(f"pipe-user-pages-soft {soft} needs {pipes_needed} pipes of "
                          f"{max_size} bytes: more than a function's fds")
        event = {"at_most": 450, "size": max_size}
        held, other = self.hold_and_probe(HOLD_PIPES, TRY_PIPE, event)
        self.assertEqual(held["error"], "EPERM", held)
        # Stopped by the quota (each pipe's default buffer counts too), not by anything else.
        self.assertGreaterEqual(held["resized"], pipes_needed // 2, held)
        self.assertEqual(other, "OK", "a second function could not grow a pipe")
        # Sandboxes once all ran as "nobody" on the host: the host's own nobody must not share
        # their quota either.
        self.assertEqual(host_attempt(TRY_PIPE, f"try_pipe({max_size})", user=sf.NOBODY), "OK",
                         "nobody on the host could not grow a pipe")
        self.assertEqual(host_attempt(TRY_PIPE, f"try_pipe({max_size})"), "OK")
        self.assert_host_clean()

    def test_queued_signals(self):
        soft, _ = resource.getrlimit(resource.RLIMIT_SIGPENDING)
        if soft == resource.RLIM_INFINITY or soft > 500000:
            self.skipTest(f"RLIMIT_SIGPENDING is {soft}: too many signals to queue in a test")
        held, other = self.hold_and_probe(HOLD_SIGNALS, TRY_SIGNAL, {"at_most": soft + 10})
        self.assertEqual(held["error"], "EAGAIN", held)
        self.assertEqual(other, "OK", "a second function could not queue a signal")
        self.assertEqual(host_attempt(TRY_SIGNAL, "try_signal()"), "OK",
                         "root on the host could not queue a signal")
        self.assert_host_clean()


if __name__ == "__main__":
    unittest.main()
