"""Tests of the Node shim's HTTP client against a byte-exact fake Runtime API.

Run from the repository root:  /usr/bin/python3 -m unittest discover -s tests/runtimes -v

The client parses every read in place in one reused buffer, so these tests control how the
bytes are cut: wispd's 202 and the next event in one write or apart, responses cut at every
offset, events around and above the read buffer's size, framings wispd does not use.
"""

import datetime
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import textwrap
import time
import unittest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NODE = "/usr/bin/node"
NODE_SHIM = os.path.join(REPO_ROOT, "runtimes", "node", "bootstrap.js")
PREFIX = "/2018-06-01/runtime"
WAIT = 10.0  # seconds; generous upper bound, tests normally finish in well under a second
READ_BUFFER_BYTES = 64 * 1024  # the shim's kReadBufferBytes
ACCEPTED = (b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n"
            b'{"status":"OK"}')

# Echoes what the shim gave the handler, so a test can check every byte arrived.
ECHO_CODE = """\
    const crypto = require('crypto');
    exports.handler = async (event, context) => ({
      id: context.awsRequestId,
      n: event.s.length,
      sha: crypto.createHash('sha256').update(event.s).digest('hex'),
    });
    """


def next_response(request_id, body, chunked=False, trace=b"Root=1-0-0;Sampled=0"):
    """A /next response as wispd writes it (trace None: without a trace id)."""
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Lambda-Runtime-Aws-Request-Id: %s\r\nLambda-Runtime-Deadline-Ms: %d\r\n"
            b"Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:wisp-local:0:function:f\r\n"
            % (request_id.encode(), int(time.time() * 1000) + 3000))
    if trace is not None:
        head += b"Lambda-Runtime-Trace-Id: %s\r\n" % trace
    if not chunked:
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    third = max(1, len(body) // 3)
    payload = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + third]), body[i:i + third])
                       for i in range(0, len(body), third))
    return head + b"Transfer-Encoding: chunked\r\n\r\n" + payload + b"0\r\n\r\n"


def echo_event(text):
    return json.dumps({"s": text}, ensure_ascii=False).encode()


def echo_result(request_id, text):
    return {"id": request_id, "n": len(text.encode("utf-16-le")) // 2,
            "sha": hashlib.sha256(text.encode()).hexdigest()}


class RawRuntimeApi:
    """One connection of a fake Runtime API whose replies the test writes byte for byte."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.listener.settimeout(WAIT)
        self.port = self.listener.getsockname()[1]
        self.conn = None
        self.pending = b""

    def accept(self):
        if self.conn is not None:
            self.conn.close()
        self.conn, _ = self.listener.accept()
        self.conn.settimeout(WAIT)
        self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pending = b""

    def _recv_more(self):
        chunk = self.conn.recv(65536)
        if not chunk:
            raise EOFError("the shim closed the connection")
        self.pending += chunk

    def read_request(self):
        """(method, path, body) of the next request on the connection."""
        while b"\r\n\r\n" not in self.pending:
            self._recv_more()
        head, _, self.pending = self.pending.partition(b"\r\n\r\n")
        lines = head.decode("latin1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        while len(self.pending) < length:
            self._recv_more()
        body, self.pending = self.pending[:length], self.pending[length:]
        return method, path, body

    def send(self, *pieces, gap=0.002):
        """Writes each piece on its own, a little apart, so that the shim reads them apart."""
        for i, piece in enumerate(pieces):
            if i:
                time.sleep(gap)
            self.conn.sendall(piece)

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.listener.close()


class NodeShimFastPathTest(unittest.TestCase):

    def start(self, code):
        api = RawRuntimeApi()
        self.addCleanup(api.close)
        task_root = tempfile.mkdtemp(prefix="wisp-node-fast-path-")
        self.addCleanup(shutil.rmtree, task_root, True)
        with open(os.path.join(task_root, "index.js"), "w") as f:
            f.write(textwrap.dedent(code))
        self.output = tempfile.TemporaryFile()
        self.addCleanup(self.output.close)
        env = {
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:%d" % api.port,
            "_HANDLER": "index.handler",
            "LAMBDA_TASK_ROOT": task_root,
            "AWS_LAMBDA_FUNCTION_NAME": "f",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        }
        proc = subprocess.Popen([NODE, NODE_SHIM], env=env, stdin=subprocess.DEVNULL,
                                stdout=self.output, stderr=subprocess.STDOUT)
        self.addCleanup(proc.wait)
        self.addCleanup(proc.kill)
        api.accept()
        self.assertEqual(api.read_request()[:2], ("GET", PREFIX + "/invocation/next"))
        return api

    def shim_output(self):
        self.output.seek(0)
        return self.output.read().decode("utf-8", "replace")

    def expect_result(self, api, request_id):
        """Reads the shim's POST /response and the GET /next sent with it; returns the result."""
        method, path, body = api.read_request()
        self.assertEqual((method, path),
                         ("POST", "%s/invocation/%s/response" % (PREFIX, request_id)),
                         self.shim_output())
        self.assertEqual(api.read_request()[:2], ("GET", PREFIX + "/invocation/next"))
        return json.loads(body)

    def test_reply_and_next_event_in_one_write(self):
        # wispd holds its 202 back and sends it with the next event when the runtime pipelined
        # its GET /next.
        api = self.start(ECHO_CODE)
        api.send(next_response("r0", echo_event("first")))
        self.assertEqual(self.expect_result(api, "r0"), echo_result("r0", "first"))
        for i in range(1, 50):
            text = "event %d é" % i
            api.send(ACCEPTED + next_response("r%d" % i, echo_event(text)))
            self.assertEqual(self.expect_result(api, "r%d" % i), echo_result("r%d" % i, text))

    def test_reply_and_next_event_in_separate_writes(self):
        api = self.start(ECHO_CODE)
        api.send(next_response("r0", echo_event("first")))
        self.assertEqual(self.expect_result(api, "r0"), echo_result("r0", "first"))
        for i in range(1, 20):
            api.send(ACCEPTED, next_response("r%d" % i, echo_event("x" * i)), gap=0.005)
            self.assertEqual(self.expect_result(api, "r%d" % i), echo_result("r%d" % i, "x" * i))

    def check_cuts(self, chunked):
        # The 202 and the next event, cut in two: the shim must copy what it keeps of the first
        # read (a half-read head, chunk or body, or whole chunks), since the next read reuses
        # the buffer. A short event is cut at every offset; a longer one, whose second part
        # overwrites what the first read left in the buffer, at every 16th.
        api = self.start(ECHO_CODE)
        api.send(next_response("r0", echo_event("first")))
        self.expect_result(api, "r0")
        for text, step in (("cut é€😀 here", 1), ("long é€😀 event " * 100, 16)):
            sample = ACCEPTED + next_response("r0000", echo_event(text), chunked=chunked)
            for cut in range(1, len(sample), step):
                request_id = "r%04d" % cut  # fixed width: every data has the sample's length
                data = ACCEPTED + next_response(request_id, echo_event(text), chunked=chunked)
                api.send(data[:cut], data[cut:], gap=0.001)
                self.assertEqual(self.expect_result(api, request_id),
                                 echo_result(request_id, text))

    def test_reply_and_next_event_cut_anywhere(self):
        self.check_cuts(chunked=False)

    def test_chunked_reply_and_next_event_cut_anywhere(self):
        self.check_cuts(chunked=True)

    def test_event_one_byte_per_write(self):
        api = self.start(ECHO_CODE)
        data = next_response("r0", echo_event("byte by byte é"))
        api.send(*[data[i:i + 1] for i in range(len(data))], gap=0.0005)
        self.assertEqual(self.expect_result(api, "r0"), echo_result("r0", "byte by byte é"))

    def test_events_around_and_above_the_read_buffer_size(self):
        api = self.start(ECHO_CODE)
        api.send(next_response("r0", echo_event("first")))
        self.expect_result(api, "r0")
        head_bytes = len(ACCEPTED + next_response("r1", b""))
        sizes = [READ_BUFFER_BYTES - head_bytes - 1, READ_BUFFER_BYTES - head_bytes,
                 READ_BUFFER_BYTES - head_bytes + 1, READ_BUFFER_BYTES, READ_BUFFER_BYTES + 1,
                 3 * READ_BUFFER_BYTES + 7, 1 << 20]
        for i, size in enumerate(sizes, 1):
            # Two-byte characters every 7 bytes: some straddle the read boundaries.
            text = ("abcdeé" * (size // 7 + 1))[:max(0, size - 10)]
            request_id = "r%d" % i
            api.send(ACCEPTED + next_response(request_id, echo_event(text)))
            self.assertEqual(self.expect_result(api, request_id), echo_result(request_id, text),
                             "event of %d bytes" % size)

    def test_large_event_in_uneven_writes(self):
        api = self.start(ECHO_CODE)
        api.send(next_response("r0", echo_event("first")))
        self.expect_result(api, "r0")
        text = "€" * 100000
        data = ACCEPTED + next_response("r1", echo_event(text))
        cuts = [0, len(ACCEPTED) + 5, len(ACCEPTED) + 300, 70000, 70003, 70003 + READ_BUFFER_BYTES,
                len(data) - 1, len(data)]
        api.send(*[data[a:b] for a, b in zip(cuts, cuts[1:])])
        self.assertEqual(self.expect_result(api, "r1"), echo_result("r1", text))

    def test_interim_response_before_the_event(self):
        api = self.start(ECHO_CODE)
        api.send(b"HTTP/1.1 100 Continue\r\n\r\n" + next_response("r0", echo_event("after 100")))
        self.assertEqual(self.expect_result(api, "r0"), echo_result("r0", "after 100"))

    def test_header_names_in_any_case_and_values_with_blanks(self):
        code = """\
            exports.handler = (event, context) => ({
              id: context.awsRequestId,
              arn: context.invokedFunctionArn,
              trace: process.env._X_AMZN_TRACE_ID,
              left: context.getRemainingTimeInMillis(),
              clientContext: context.clientContext,
            });
            """
        api = self.start(code)
        body = b"{}"
        api.send(b"HTTP/1.1 200 OK\r\nX-Unknown: 1\r\n"
                 b"lambda-runtime-aws-request-id:\t r-lower \t\r\n"
                 b"LAMBDA-RUNTIME-DEADLINE-MS: %d\r\n"
                 b"Lambda-Runtime-Invoked-Function-Arn: first\r\n"
                 b"Lambda-Runtime-Invoked-Function-Arn:   last  \r\n"
                 b"lambda-Runtime-trace-ID:Root=1-2-3\r\n"
                 b"Lambda-Runtime-Client-Context: {\"custom\": {\"k\": 1}}\r\n"
                 b"content-LENGTH : %d\r\n\r\n%s"
                 % (int(time.time() * 1000) + 60000, len(body), body))
        result = self.expect_result(api, "r-lower")
        self.assertEqual(result["id"], "r-lower")
        self.assertEqual(result["arn"], "last")
        self.assertEqual(result["trace"], "Root=1-2-3")
        self.assertGreater(result["left"], 50000)
        self.assertEqual(result["clientContext"], {"custom": {"k": 1}})

    def test_trace_id_follows_every_event(self):
        # The shim writes process.env only when the trace id changes; what the handler changed
        # itself must still be put right.
        code = """\
            exports.handler = (event) => {
              const seen = process.env._X_AMZN_TRACE_ID;
              process.env._X_AMZN_TRACE_ID = 'set-by-the-handler';
              return { seen: seen === undefined ? null : seen };
            };
            """
        api = self.start(code)
        traces = ["Root=1-a", "Root=1-a", None, None, "Root=1-b", "Root=1-b"]
        for i, trace in enumerate(traces):
            request_id = "r%d" % i
            response = next_response(request_id, b"{}",
                                     trace=None if trace is None else trace.encode())
            api.send((ACCEPTED if i else b"") + response)
            self.assertEqual(self.expect_result(api, request_id), {"seen": trace})

    def test_context_timestamp_is_the_invocation_time_in_iso_format(self):
        code = """\
            exports.handler = (event, context) => ({ timestamp: context.timestamp });
            """
        api = self.start(code)
        for i in range(6):
            before_ms = int(time.time() * 1000)
            api.send((ACCEPTED if i else b"") + next_response("r%d" % i, b"{}"))
            timestamp = self.expect_result(api, "r%d" % i)["timestamp"]
            after_ms = int(time.time() * 1000)
            self.assertRegex(timestamp, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            stamp = datetime.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%fZ")
            stamp_ms = round(stamp.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)
            self.assertTrue(before_ms - 1 <= stamp_ms <= after_ms + 1,
                            (before_ms, timestamp, after_ms))
            time.sleep(0.3)  # some invocations fall in a new second, some in the same

    def test_event_delimited_by_connection_close(self):
        api = self.start(ECHO_CODE)
        # Long enough that the second read overwrites where the first one left the body's start.
        text = "until the end é " * 50
        data = next_response("r0", echo_event(text))
        data = re.sub(rb"Content-Length: \d+\r\n", b"Connection: close\r\n", data)
        head, _, body = data.partition(b"\r\n\r\n")
        api.send(head + b"\r\n\r\n" + body[:5], body[5:])
        api.conn.shutdown(socket.SHUT_WR)
        # The shim answers on a new connection.
        api.accept()
        self.assertEqual(self.expect_result(api, "r0"), echo_result("r0", text))


if __name__ == "__main__":
    unittest.main()
