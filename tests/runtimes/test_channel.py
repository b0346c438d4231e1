"""The shims' use of wispd's Unix-socket Runtime API channel (WISP_RUNTIME_API_FD).

Run from the repository root:  /usr/bin/python3 -m unittest discover -s tests/runtimes -v

wispd starts each sandbox with one end of a connected Unix socket at the fd that
WISP_RUNTIME_API_FD names. Wisp's shims must speak the Runtime API over it instead of loopback
TCP, hide the variable from the function, and fall back to AWS_LAMBDA_RUNTIME_API over TCP
should the channel ever close.
"""

import json
import os
import select
import socket
import subprocess
import tempfile
import time
import unittest

from test_shims import ACCEPTED, NODE, NODE_SHIM, PREFIX, PYTHON, PYTHON_SHIM, WAIT, \
    RawRuntimeApi, next_response

FUNCTIONS = {
    "node": ("index.js", "exports.handler = async (event) =>"
                         " ({n: event.n, fdVar: process.env.WISP_RUNTIME_API_FD ?? null});\n",
             [NODE, NODE_SHIM]),
    "python": ("lambda_function.py", "import os\n"
                                     "def handler(event, context):\n"
                                     "    return {'n': event['n'],"
                                     " 'fdVar': os.environ.get('WISP_RUNTIME_API_FD')}\n",
               [PYTHON, "-u", PYTHON_SHIM]),
}
HANDLERS = {"node": "index.handler", "python": "lambda_function.handler"}


class ChannelTest(unittest.TestCase):

    def start(self, lang, code=None):
        """Starts the shim with a channel; returns (api listening on TCP, wispd's channel end)."""
        file_name, default_code, argv = FUNCTIONS[lang]
        code = code or default_code
        task_root = tempfile.TemporaryDirectory(prefix="wisp-channel-test-")
        self.addCleanup(task_root.cleanup)
        with open(os.path.join(task_root.name, file_name), "w") as f:
            f.write(code)
        api = RawRuntimeApi()
        self.addCleanup(api.close)
        wispd_end, runtime_end = socket.socketpair()
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
               "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:%d" % api.port,
               "WISP_RUNTIME_API_FD": str(runtime_end.fileno()),
               # The shim hides the variable above from the function; tests may need the number.
               "TEST_CHANNEL_FD": str(runtime_end.fileno()),
               "_HANDLER": HANDLERS[lang], "LAMBDA_TASK_ROOT": task_root.name}
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                pass_fds=[runtime_end.fileno()])
        runtime_end.close()

        def stop():
            proc.kill()
            proc.wait()
        self.addCleanup(stop)
        wispd_end.settimeout(WAIT)
        self.pid = proc.pid
        return api, wispd_end

    def check(self, lang):
        api, channel = self.start(lang)
        api.conn = channel  # the fake serves the channel as if it had accepted it
        self.assertEqual(api.read_request()[:2], ("GET", PREFIX + "/invocation/next"))
        api.send(next_response("req-1", b'{"n":1}', trace=None))
        method, path, body = api.read_request()
        self.assertEqual((method, path), ("POST", PREFIX + "/invocation/req-1/response"))
        self.assertEqual(json.loads(body), {"n": 1, "fdVar": None},
                         "the function does not see the channel's variable")
        self.assertEqual(api.read_request()[:2], ("GET", PREFIX + "/invocation/next"))
        ready, _, _ = select.select([api.listener], [], [], 0)
        self.assertEqual(ready, [], "nothing went over TCP while the channel was open")

        # The channel closes while the shim waits for its next event: it asks again over TCP.
        api.send(ACCEPTED)
        channel.close()
        api.conn = None
        api.accept()
        self.assertEqual(api.read_request()[:2], ("GET", PREFIX + "/invocation/next"))
        api.send(next_response("req-2", b'{"n":2}', trace=None))
        method, path, body = api.read_request()
        self.assertEqual((method, path), ("POST", PREFIX + "/invocation/req-2/response"))
        self.assertEqual(json.loads(body)["n"], 2)

    def sleeps_of_runtime_thread(self):
        with open("/proc/%d/task/%d/status" % (self.pid, self.pid)) as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches:"):
                    return int(line.split()[1])
        raise AssertionError("no voluntary_ctxt_switches in /proc status")

    def check_one_sleep_per_invocation(self, lang):
        """The shim sleeps once per invocation, waiting for its event. wispd reading a result
        wakes the writer's side of the shim's socket; a shim blocked in recv() would wake for
        that too and sleep again, a context switch more per call."""
        api, channel = self.start(lang)
        api.conn = channel
        api.read_request()  # the first GET /next
        invocations = 40
        accepted = b""
        for i in range(invocations + 1):
            if i == 1:
                before = self.sleeps_of_runtime_thread()
            # As wispd does: the 202 for the last result travels with the next event.
            api.send(accepted + next_response("req-%d" % i, b'{"n":%d}' % i, trace=None))
            accepted = ACCEPTED
            select.select([channel], [], [], WAIT)
            time.sleep(0.005)  # the shim is asleep waiting for its next event before we read
            self.assertEqual(api.read_request()[1], PREFIX + "/invocation/req-%d/response" % i)
            self.assertEqual(api.read_request()[1], PREFIX + "/invocation/next")
            time.sleep(0.005)
        sleeps = self.sleeps_of_runtime_thread() - before
        # One sleep per invocation; a few more are allowed for the runtime's own housekeeping.
        self.assertLess(sleeps, invocations * 1.5,
                        "%d sleeps for %d invocations: woken by its own writes being read" %
                        (sleeps, invocations))

    def test_node_sleeps_once_per_invocation(self):
        self.check_one_sleep_per_invocation("node")

    def test_python_sleeps_once_per_invocation(self):
        self.check_one_sleep_per_invocation("python")

    def check_children_do_not_get_the_channel(self, lang, code):
        """A process the function starts does not hold the channel: it could otherwise speak
        the Runtime API for the function, e.g. post a result after the handler returned."""
        api, channel = self.start(lang, code)
        api.conn = channel
        api.read_request()
        api.send(next_response("req-1", b'{}', trace=None))
        method, path, body = api.read_request()
        self.assertEqual((method, path), ("POST", PREFIX + "/invocation/req-1/response"))
        out = json.loads(body)
        self.assertTrue(out["channel"].startswith("socket:["), out)
        self.assertNotIn(out["channel"], out["child"], "the child holds the runtime's channel")

    def test_node_function_children_do_not_get_the_channel(self):
        self.check_children_do_not_get_the_channel("node", (
            "const fs = require('fs');\n"
            "const { execSync } = require('child_process');\n"
            "exports.handler = async () => ({\n"
            "  channel: fs.readlinkSync('/proc/self/fd/' + process.env.TEST_CHANNEL_FD),\n"
            "  child: execSync('ls -l /proc/self/fd/').toString()});\n"))

    def test_python_function_children_do_not_get_the_channel(self):
        self.check_children_do_not_get_the_channel("python", (
            "import os, subprocess\n"
            "def handler(event, context):\n"
            "    return {'channel': os.readlink('/proc/self/fd/' + os.environ['TEST_CHANNEL_FD']),\n"
            "            'child': subprocess.run(['ls', '-l', '/proc/self/fd/'], close_fds=False,\n"
            "                                    capture_output=True, text=True).stdout}\n"))

    def test_node_uses_the_channel_then_falls_back_to_tcp(self):
        self.check("node")

    def test_python_uses_the_channel_then_falls_back_to_tcp(self):
        self.check("python")


if __name__ == "__main__":
    unittest.main()
