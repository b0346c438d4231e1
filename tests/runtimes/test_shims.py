"""Tests of the Node and Python runtime shims against a fake Runtime API.

Run from the repository root:  /usr/bin/python3 -m unittest discover -s tests/runtimes -v

Each test starts a shim as a subprocess with AWS_LAMBDA_RUNTIME_API pointing at an in-process
fake of wispd's Runtime API and LAMBDA_TASK_ROOT at a temporary directory holding the user's
code. Like wispd, the fake reads the shim's combined stdout+stderr pipe and drains it when a
response or error arrives, so the tests can check that every log line was written before the
response was sent. The ClientFramingTests talk to the shim over a raw socket instead, writing
replies byte for byte to control how they are cut into the shim's reads.
"""

import datetime
import fcntl
import hashlib
import json
import os
import queue
import re
import select
import shutil
import socket
import subprocess
import tempfile
import textwrap
import threading
import time
import unittest
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NODE = "/usr/bin/node"
PYTHON = "/usr/bin/python3"
NODE_SHIM = os.path.join(REPO_ROOT, "runtimes", "node", "bootstrap.js")
PYTHON_SHIM = os.path.join(REPO_ROOT, "runtimes", "python", "bootstrap.py")
PREFIX = "/2018-06-01/runtime"
WAIT = 10.0  # seconds; generous upper bound, tests normally finish in well under a second


class Posted:
    """A /response or /error the shim sent, with the output the shim had written by then."""

    def __init__(self, request_id, kind, body, headers, output):
        self.request_id = request_id
        self.kind = kind  # "response" or "error"
        self.body = body
        self.headers = headers
        self.output = output  # the shim's stdout+stderr drained when this arrived

    def json(self):
        return json.loads(self.body)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a shim killed or exiting mid-connection is expected here


class FakeRuntimeApi:
    """A fake of wispd's Runtime API: queues events, records what the shim posts."""

    def __init__(self, close_after_post=False, framing="plain"):
        # framing of /next replies: "plain" (one write), "trickle" (head and body cut into
        # pieces written a little apart, so the shim sees partial reads), "chunked"
        # (Transfer-Encoding: chunked, trickled too).
        self.framing = framing
        self.events = queue.Queue()
        self.posts = []  # Posted, in arrival order
        self.init_errors = []  # (body, headers)
        self.connections = 0
        self.requests = []  # (method, path)
        self.close_after_post = close_after_post
        self.on_post = None  # called before a post is recorded; returns output so far
        self.cond = threading.Condition()
        self.stopping = False
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                # Head and body go out in separate writes; without this, Nagle's algorithm and
                # the client's delayed ACK would add ~40 ms to every reply.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with api.cond:
                    api.connections += 1

            def log_message(self, *args):
                pass

            def _reply(self, status, body=b"", headers=None, close=False):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                if close:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                with api.cond:
                    api.requests.append(("GET", self.path))
                if self.path != PREFIX + "/invocation/next":
                    self._reply(404, b'{"errorType":"NotFound"}')
                    return
                while True:  # long poll, never times out
                    try:
                        ev = api.events.get(timeout=0.05)
                        break
                    except queue.Empty:
                        if api.stopping:
                            self.close_connection = True
                            return
                request_id, body, headers = ev
                if api.framing == "plain":
                    self._reply(200, body, headers)
                else:
                    self._trickle(body, headers, api.framing == "chunked")

            def _trickle(self, body, headers, chunked):
                head = "HTTP/1.1 200 OK\r\n" + "".join(
                    "%s: %s\r\n" % kv for kv in headers.items())
                if chunked:
                    head += "Transfer-Encoding: chunked\r\n\r\n"
                    step = max(1, len(body) // 5)
                    payload = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + step]), body[i:i + step])
                                       for i in range(0, len(body), step)) + b"0\r\n\r\n"
                else:
                    head += "Content-Length: %d\r\n\r\n" % len(body)
                    payload = body
                data = head.encode() + payload
                # Cut inside the head, right after it, and a few times in the body.
                cuts = sorted({7, len(head) - 3, len(head) + 1, len(head) + 2 + len(payload) // 3,
                               len(head) + 4 + len(payload) // 2, len(data) - 1})
                prev = 0
                for cut in cuts + [len(data)]:
                    if prev < cut <= len(data):
                        self.wfile.write(data[prev:cut])
                        self.wfile.flush()
                        time.sleep(0.002)
                        prev = cut

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                with api.cond:
                    api.requests.append(("POST", self.path))
                output = api.on_post() if api.on_post else b""
                path = self.path
                if path == PREFIX + "/init/error":
                    with api.cond:
                        api.init_errors.append((body, headers))
                        api.cond.notify_all()
                    self._reply(202, b'{"status":"OK"}', close=api.close_after_post)
                    return
                parts = path[len(PREFIX):].split("/")  # ['', 'invocation', id, kind]
                if (not path.startswith(PREFIX) or len(parts) != 4 or parts[1] != "invocation"
                        or parts[3] not in ("response", "error")):
                    self._reply(404, b'{"errorType":"NotFound"}')
                    return
                with api.cond:
                    api.posts.append(Posted(parts[2], parts[3], body, headers, output))
                    api.cond.notify_all()
                self._reply(202, b'{"status":"OK"}', close=api.close_after_post)

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def add_event(self, event, deadline_in_ms=3000, request_id=None, trace=None, raw=None,
                  client_context=None, identity=None):
        request_id = request_id or str(uuid.uuid4())
        headers = {
            "Content-Type": "application/json",
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + deadline_in_ms),
            "Lambda-Runtime-Invoked-Function-Arn":
                "arn:aws:lambda:us-east-1:000000000000:function:test-fn",
            "Lambda-Runtime-Trace-Id": trace or "Root=1-5759e988-bd862e3fe1be46a994272793;"
                                                 "Parent=53995c3f42cd8ad8;Sampled=1",
        }
        if client_context is not None:
            headers["Lambda-Runtime-Client-Context"] = json.dumps(client_context)
        if identity is not None:
            headers["Lambda-Runtime-Cognito-Identity"] = json.dumps(identity)
        body = raw if raw is not None else json.dumps(event).encode()
        self.events.put((request_id, body, headers))
        return request_id

    def wait_posts(self, n, timeout=WAIT):
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.posts) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("expected %d posts, got %d" % (n, len(self.posts)))
                self.cond.wait(left)
            return list(self.posts)

    def wait_init_error(self, timeout=WAIT):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not self.init_errors:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no init error posted")
                self.cond.wait(left)
            body, headers = self.init_errors[0]
            return json.loads(body), headers

    def wait_connections(self, n, timeout=2.0):
        deadline = time.monotonic() + timeout
        while self.connections < n and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.connections

    def close(self):
        self.stopping = True
        self.server.shutdown()
        self.server.server_close()


ACCEPTED = (b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n"
            b'{"status":"OK"}')


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


class RawRuntimeApi:
    """One connection of a fake Runtime API whose replies the test writes byte for byte, so it
    chooses how they are cut into the shim's reads."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.listener.settimeout(WAIT)
        self.port = self.listener.getsockname()[1]
        self.on_post = None  # Shim sets it; the test reads the output itself
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
        lines = head.decode("latin-1").split("\r\n")
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


class Shim:
    """A shim subprocess with its combined stdout+stderr pipe drained like wispd does."""

    def __init__(self, lang, files, handler, api, extra_env=None, prepare=None):
        self.task_root = tempfile.mkdtemp(prefix="wisp-shim-test-")
        for name, content in files.items():
            path = os.path.join(self.task_root, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(textwrap.dedent(content))
        if prepare:
            prepare(self.task_root)
        env = {
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:%d" % api.port,
            "_HANDLER": handler,
            "LAMBDA_TASK_ROOT": self.task_root,
            "AWS_LAMBDA_FUNCTION_NAME": "test-fn",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/test-fn",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/21/[$LATEST]abcdef",
            "AWS_REGION": "us-east-1",
        }
        env.update(extra_env or {})
        if lang == "node":
            argv = [NODE, NODE_SHIM]
        else:
            argv = [PYTHON, "-u", PYTHON_SHIM]
            env["PYTHONUNBUFFERED"] = "1"
        self.output = bytearray()
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.fd = self.proc.stdout.fileno()
        fl = fcntl.fcntl(self.fd, fcntl.F_GETFL)
        fcntl.fcntl(self.fd, fcntl.F_SETFL, fl | os.O_NONBLOCK)
        self.eof = False
        self.stop_reader = False
        self.reader = threading.Thread(target=self._read_loop, daemon=True)
        self.reader.start()
        api.on_post = self.drain

    def _read_loop(self):
        while not self.stop_reader and not self.eof:
            try:
                select.select([self.fd], [], [], 0.02)
            except (OSError, ValueError):
                return
            self.drain()

    def drain(self):
        """Reads everything in the pipe now; returns all output so far."""
        with self.lock:
            while not self.eof:
                try:
                    chunk = os.read(self.fd, 65536)
                except BlockingIOError:
                    break
                except OSError:
                    self.eof = True
                    break
                if not chunk:
                    self.eof = True
                    break
                self.output += chunk
            return bytes(self.output)

    def text(self):
        return self.drain().decode("utf-8", "replace")

    def wait_exit(self, timeout=WAIT):
        code = self.proc.wait(timeout=timeout)
        self.drain()
        return code

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.stop_reader = True
        self.reader.join(timeout=2)
        self.proc.stdout.close()
        shutil.rmtree(self.task_root, ignore_errors=True)


class ShimTestCase(unittest.TestCase):
    lang = None  # "node" or "python"
    main_file = None  # file name used by the `start` helper for single-file functions

    def start(self, code, handler=None, files=None, close_after_post=False, extra_env=None,
              prepare=None, framing="plain"):
        api = FakeRuntimeApi(close_after_post=close_after_post, framing=framing)
        self.addCleanup(api.close)
        all_files = dict(files or {})
        if code is not None:
            all_files[self.main_file] = code
        shim = Shim(self.lang, all_files, handler or self.default_handler, api, extra_env, prepare)
        self.addCleanup(shim.close)
        return api, shim

    def invoke(self, code, events, handler=None, **kw):
        api, shim = self.start(code, handler, **kw)
        ids = [api.add_event(e) for e in events]
        posts = api.wait_posts(len(events))
        self.assertEqual([p.request_id for p in posts], ids)
        return posts, api, shim

    def invoke_one(self, code, event=None, handler=None, **kw):
        posts, api, shim = self.invoke(code, [event if event is not None else {}], handler, **kw)
        return posts[0], api, shim

    def assert_response(self, post, expected):
        self.assertEqual(post.kind, "response", post.body)
        self.assertEqual(post.json(), expected)

    def init_error(self, code, handler=None, files=None):
        api, shim = self.start(code, handler, files=files)
        body, headers = api.wait_init_error()
        self.assertEqual(shim.wait_exit(), 1)
        self.assertEqual(headers.get("lambda-runtime-function-error-type"), body["errorType"])
        self.assertIsInstance(body["stackTrace"], list)
        self.assertEqual(api.posts, [])
        # Nothing may be fetched before init succeeded.
        self.assertNotIn(("GET", PREFIX + "/invocation/next"), api.requests)
        return body, shim


class FramingTests:
    """The shims' HTTP clients against partial reads, chunked coding and large bodies."""

    echo_code = None  # a handler returning {"n": len(event["s"]), "tail": event["s"][-5:]}

    def check_echo(self, framing):
        events = [{"s": "a" * 10 + "12345"}, {"s": "é" * 1000 + "x" * (3 << 20) + "tail!"},
                  {"s": "short"}]
        api, _ = self.start(self.echo_code, framing=framing)
        # Raw UTF-8 (not \\u escapes), so multi-byte characters straddle the read boundaries.
        ids = [api.add_event(None, raw=json.dumps(e, ensure_ascii=False).encode()) for e in events]
        posts = api.wait_posts(len(events))
        self.assertEqual([p.request_id for p in posts], ids)
        self.assertEqual([p.json() for p in posts],
                         [{"n": len(e["s"]), "tail": e["s"][-5:]} for e in events])
        self.assertEqual(api.connections, 1)

    def test_partial_reads(self):
        self.check_echo("trickle")

    def test_chunked_transfer_coding(self):
        self.check_echo("chunked")

    def test_large_event_in_one_write(self):
        self.check_echo("plain")


def echo_event(text):
    return json.dumps({"s": text}, ensure_ascii=False).encode()


class ClientFramingTests:
    """The shims' HTTP clients against replies cut and joined as the test chooses: wispd's 202
    and the next event in one write or apart, responses cut at every offset, bodies around and
    above the read buffer's size, framings wispd does not use."""

    lang = None  # lang, main_file and default_handler: as in ShimTestCase
    main_file = None
    default_handler = None
    read_buffer_bytes = None  # the size of the shim's read buffer
    long_cut_step = None  # a long reply is cut at every long_cut_step-th offset
    # Echoes what the shim gave the handler, so a test can check every byte arrived:
    # {"id": the request id, "n": the length of event["s"], "sha": the SHA-256 of its UTF-8}.
    echo_code = None
    # Returns {"id", "arn", "trace", "left", "custom"}: the request id, the invoked function's
    # ARN, the trace id variable, the time left in ms and the client context's "custom".
    context_code = None
    # Returns {"seen": the trace id variable (null when unset)}, then sets the variable itself.
    trace_code = None
    repeat_code = None  # returns "é" repeated event["n"] times
    timestamp_code = None  # returns {"timestamp": the context's timestamp}

    def text_length(self, text):
        """The length of text as the handler's language counts it."""
        raise NotImplementedError

    def echo_result(self, request_id, text):
        return {"id": request_id, "n": self.text_length(text),
                "sha": hashlib.sha256(text.encode()).hexdigest()}

    def start(self, code):
        api = RawRuntimeApi()
        self.addCleanup(api.close)
        self.shim = Shim(self.lang, {self.main_file: code}, self.default_handler, api)
        self.addCleanup(self.shim.close)
        api.accept()
        self.assertEqual(api.read_request()[:2], ("GET", PREFIX + "/invocation/next"))
        return api

    def expect_result(self, api, request_id):
        """Reads the shim's POST /response and the GET /next sent with it; returns the result."""
        method, path, body = api.read_request()
        self.assertEqual((method, path),
                         ("POST", "%s/invocation/%s/response" % (PREFIX, request_id)),
                         self.shim.text())
        self.assertEqual(api.read_request()[:2], ("GET", PREFIX + "/invocation/next"))
        return json.loads(body)

    def start_echo(self):
        api = self.start(self.echo_code)
        api.send(next_response("r0", echo_event("first")))
        self.assertEqual(self.expect_result(api, "r0"), self.echo_result("r0", "first"))
        return api

    def test_reply_and_next_event_in_one_write(self):
        # wispd holds its 202 back and sends it with the next event when the runtime pipelined
        # its GET /next.
        api = self.start_echo()
        for i in range(1, 50):
            text = "event %d é" % i
            api.send(ACCEPTED + next_response("r%d" % i, echo_event(text)))
            self.assertEqual(self.expect_result(api, "r%d" % i),
                             self.echo_result("r%d" % i, text))

    def test_reply_and_next_event_in_separate_writes(self):
        api = self.start_echo()
        for i in range(1, 20):
            api.send(ACCEPTED, next_response("r%d" % i, echo_event("x" * i)), gap=0.005)
            self.assertEqual(self.expect_result(api, "r%d" % i),
                             self.echo_result("r%d" % i, "x" * i))

    def check_cuts(self, chunked):
        # The 202 and the next event, cut in two: whatever the first read ends in (a status
        # line, a head, a chunk size, a body), the rest must join it, and what the shim keeps
        # of the first read must outlive the next read into the same buffer. A short event is
        # cut at every offset; a longer one, whose second part overwrites what the first read
        # left in the buffer, at every long_cut_step-th.
        api = self.start_echo()
        for text, step in (("cut é€😀 here", 1), ("long é€😀 event " * 100, self.long_cut_step)):
            sample = ACCEPTED + next_response("r0000", echo_event(text), chunked=chunked)
            for cut in range(1, len(sample), step):
                request_id = "r%04d" % cut  # fixed width: every data has the sample's length
                data = ACCEPTED + next_response(request_id, echo_event(text), chunked=chunked)
                api.send(data[:cut], data[cut:], gap=0.001)
                self.assertEqual(self.expect_result(api, request_id),
                                 self.echo_result(request_id, text))

    def test_reply_and_next_event_cut_anywhere(self):
        self.check_cuts(chunked=False)

    def test_chunked_reply_and_next_event_cut_anywhere(self):
        self.check_cuts(chunked=True)

    def test_event_one_byte_per_write(self):
        api = self.start(self.echo_code)
        data = next_response("r0", echo_event("byte by byte é"))
        api.send(*[data[i:i + 1] for i in range(len(data))], gap=0.0005)
        self.assertEqual(self.expect_result(api, "r0"), self.echo_result("r0", "byte by byte é"))

    def test_events_around_and_above_the_read_buffer_size(self):
        api = self.start_echo()
        head_bytes = len(ACCEPTED + next_response("r1", b""))
        buffer_bytes = self.read_buffer_bytes
        sizes = [buffer_bytes - head_bytes - 1, buffer_bytes - head_bytes,
                 buffer_bytes - head_bytes + 1, buffer_bytes, buffer_bytes + 1,
                 3 * buffer_bytes + 7, 1 << 20]
        for i, size in enumerate(sizes, 1):
            # Two-byte characters every 7 bytes: some straddle the read boundaries.
            text = ("abcdeé" * (size // 7 + 1))[:max(0, size - 10)]
            request_id = "r%d" % i
            api.send(ACCEPTED + next_response(request_id, echo_event(text)))
            self.assertEqual(self.expect_result(api, request_id),
                             self.echo_result(request_id, text), "event of %d bytes" % size)

    def test_large_event_in_uneven_writes(self):
        api = self.start_echo()
        text = "€" * 100000
        data = ACCEPTED + next_response("r1", echo_event(text))
        cuts = [0, len(ACCEPTED) + 5, len(ACCEPTED) + 300, 70000, 70003,
                70003 + self.read_buffer_bytes, len(data) - 1, len(data)]
        api.send(*[data[a:b] for a, b in zip(cuts, cuts[1:])])
        self.assertEqual(self.expect_result(api, "r1"), self.echo_result("r1", text))

    def test_large_responses(self):
        api = self.start(self.repeat_code)
        for i, n in enumerate([10, self.read_buffer_bytes, 3 << 20]):
            api.send((ACCEPTED if i else b"") + next_response("r%d" % i, b'{"n": %d}' % n))
            self.assertEqual(self.expect_result(api, "r%d" % i), "é" * n)

    def test_interim_responses_before_the_reply_and_the_event(self):
        api = self.start(self.echo_code)
        interim = b"HTTP/1.1 100 Continue\r\n\r\n"
        # Before the first event, the first response on the connection.
        api.send(interim + next_response("r0", echo_event("after 100")))
        self.assertEqual(self.expect_result(api, "r0"), self.echo_result("r0", "after 100"))
        api.send(interim + ACCEPTED + interim + next_response("r1", echo_event("after 100")))
        self.assertEqual(self.expect_result(api, "r1"), self.echo_result("r1", "after 100"))

    def test_event_delimited_by_connection_close(self):
        api = self.start(self.echo_code)
        # Long enough that the second read overwrites where the first one left the body's start.
        text = "until the end é " * 50
        data = next_response("r0", echo_event(text))
        data = re.sub(rb"Content-Length: \d+\r\n", b"Connection: close\r\n", data)
        head, _, body = data.partition(b"\r\n\r\n")
        api.send(head + b"\r\n\r\n" + body[:5], body[5:])
        api.conn.shutdown(socket.SHUT_WR)
        # The shim answers on a new connection.
        api.accept()
        self.assertEqual(self.expect_result(api, "r0"), self.echo_result("r0", text))

    def test_header_names_in_any_case_and_values_with_blanks(self):
        api = self.start(self.context_code)
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
        self.assertEqual(result["custom"], {"k": 1})

    def test_trace_id_follows_every_event(self):
        # Whatever the handler did to the variable, the next event's trace id replaces it, and
        # an event without one removes it: even in the Node shim, which writes process.env only
        # when the trace id changes.
        api = self.start(self.trace_code)
        traces = ["Root=1-a", "Root=1-a", None, None, "Root=1-b", "Root=1-b"]
        for i, trace in enumerate(traces):
            request_id = "r%d" % i
            response = next_response(request_id, b"{}",
                                     trace=None if trace is None else trace.encode())
            api.send((ACCEPTED if i else b"") + response)
            self.assertEqual(self.expect_result(api, request_id), {"seen": trace})

    def test_context_timestamp_is_the_invocation_time_in_iso_format(self):
        api = self.start(self.timestamp_code)
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
            # Some invocations fall in a new second, some in the same: the Node shim formats a
            # second's date and time once.
            time.sleep(0.3)


class InvocationTests:
    """What both shims do around any handler: its logs, the connection, bad events, exits."""

    # Prints "start <event.i>" to stdout and "to stderr <event.i>" to stderr, writes event.big
    # x's and "\nEND<event.i>\n" to stdout, returns {"i": event.i}.
    logging_code = None
    counter_code = None  # returns {"n": how many invocations so far, this one too, "e": event}
    times_ten_code = None  # returns event * 10
    identity_code = None  # returns the event
    exit_code = None  # prints "bye" and exits with status 3

    def test_logs_are_in_the_pipe_before_the_response(self):
        posts, _, shim = self.invoke(self.logging_code, [{"i": 1, "big": 10},
                                                         {"i": 2, "big": 1 << 20},
                                                         {"i": 3, "big": 0}])
        for p in posts:
            i = p.json()["i"]
            self.assertIn(b"start %d\n" % i, p.output)
            self.assertIn(b"to stderr %d\n" % i, p.output)
            self.assertIn(b"END%d\n" % i, p.output)
        self.assertEqual(shim.text().count("x" * 1000), (1 << 20) // 1000 + 10 // 1000)
        # The shim prints nothing of its own on success.
        lines = [line for line in shim.text().splitlines() if line and not line.startswith("x")]
        self.assertEqual(lines, ["start 1", "to stderr 1", "END1", "start 2", "to stderr 2",
                                 "END2", "start 3", "to stderr 3", "END3"])

    def test_one_connection_for_many_invocations(self):
        posts, api, _ = self.invoke(self.counter_code, list(range(8)))
        self.assertEqual([p.json() for p in posts], [{"n": i + 1, "e": i} for i in range(8)])
        self.assertEqual(api.connections, 1)

    def test_reconnects_when_server_closes_connection(self):
        posts, api, _ = self.invoke(self.times_ten_code, [1, 2, 3], close_after_post=True)
        self.assertEqual([p.json() for p in posts], [10, 20, 30])
        # One connection per request/response pair plus the last /next.
        self.assertEqual(api.wait_connections(4), 4)

    def test_exit_in_handler(self):
        api, shim = self.start(self.exit_code)
        api.add_event({})
        self.assertEqual(shim.wait_exit(), 3)
        self.assertEqual(api.posts, [])
        self.assertIn("bye", shim.text())

    def test_invalid_event_json(self):
        api, _ = self.start(self.identity_code)
        api.add_event(None, raw=b"{not json")
        api.add_event({"fine": True})
        posts = api.wait_posts(2)
        self.assertEqual(posts[0].json()["errorType"], "Runtime.UnmarshalError")
        self.assert_response(posts[1], {"fine": True})


class InitErrorTests:
    """Init errors both shims report alike: handler names they refuse, modules they miss."""

    valid_code = None  # a module whose handler works
    missing_module_message = None  # what the message says when module "nothere" is missing

    def test_missing_module_file(self):
        body, _ = self.init_error(None, handler="nothere.handler")
        self.assertEqual(body["errorType"], "Runtime.ImportModuleError")
        self.assertIn(self.missing_module_message, body["errorMessage"])

    def test_dotdot_module_path_refused(self):
        for handler in ("../" + self.default_handler, "../x.handler", "a/../../x.handler"):
            body, _ = self.init_error(self.valid_code, handler=handler)
            self.assertEqual(body["errorType"], "Runtime.MalformedHandlerName", handler)

    def test_absolute_module_path_refused(self):
        body, _ = self.init_error(None, handler="/etc/passwd.handler")
        self.assertEqual(body["errorType"], "Runtime.MalformedHandlerName")

    def test_symlink_outside_task_root_refused(self):
        extension = os.path.splitext(self.main_file)[1]
        outside = tempfile.mkdtemp(prefix="wisp-outside-")
        self.addCleanup(shutil.rmtree, outside, True)
        target = os.path.join(outside, "evil" + extension)
        with open(target, "w") as f:
            f.write(self.valid_code)
        link = "link" + extension
        api, _ = self.start(None, handler="link.handler",
                            prepare=lambda root: os.symlink(target, os.path.join(root, link)))
        body, _ = api.wait_init_error()
        self.assertEqual(body["errorType"], "Runtime.ImportModuleError")
        self.assertIn("outside the task root", body["errorMessage"])

    def test_malformed_handler_name(self):
        module = self.default_handler.split(".")[0]  # a module without a function
        body, _ = self.init_error(self.valid_code, handler=module)
        self.assertEqual(body["errorType"], "Runtime.MalformedHandlerName")


# ---------------------------------------------------------------------------------------------
# Node


class NodeFraming(FramingTests, ShimTestCase):
    lang = "node"
    main_file = "index.js"
    default_handler = "index.handler"
    echo_code = "exports.handler = (e) => ({ n: e.s.length, tail: e.s.slice(-5) });\n"


class NodeClientFraming(ClientFramingTests, unittest.TestCase):
    lang = "node"
    main_file = "index.js"
    default_handler = "index.handler"
    read_buffer_bytes = 64 * 1024  # kReadBufferBytes in bootstrap.js
    long_cut_step = 16
    echo_code = """\
        const crypto = require('crypto');
        exports.handler = async (event, context) => ({
          id: context.awsRequestId,
          n: event.s.length,
          sha: crypto.createHash('sha256').update(event.s).digest('hex'),
        });
        """
    context_code = """\
        exports.handler = (event, context) => ({
          id: context.awsRequestId,
          arn: context.invokedFunctionArn,
          trace: process.env._X_AMZN_TRACE_ID,
          left: context.getRemainingTimeInMillis(),
          custom: context.clientContext.custom,
        });
        """
    trace_code = """\
        exports.handler = (event) => {
          const seen = process.env._X_AMZN_TRACE_ID;
          process.env._X_AMZN_TRACE_ID = 'set-by-the-handler';
          return { seen: seen === undefined ? null : seen };
        };
        """
    repeat_code = "exports.handler = (event) => 'é'.repeat(event.n);\n"
    timestamp_code = "exports.handler = (event, context) => ({ timestamp: context.timestamp });\n"

    def text_length(self, text):
        return len(text.encode("utf-16-le")) // 2  # a JavaScript string counts UTF-16 units


class NodeHandlerForms(ShimTestCase):
    lang = "node"
    main_file = "index.js"
    default_handler = "index.handler"

    def test_bare_declaration_without_export(self):
        # Seed 001: the function is only declared at top level.
        code = 'async function handler(event) { return { message: "Hello " + event.name }; }'
        post, _, _ = self.invoke_one(code, {"name": "World"})
        self.assert_response(post, {"message": "Hello World"})

    def test_bare_sync_declaration_named_by_handler(self):
        code = """\
            const helper = (x) => x * 2;
            function main(event) { return helper(event.n); }
            """
        post, _, _ = self.invoke_one(code, {"n": 21}, handler="index.main")
        self.assert_response(post, 42)

    def test_esm_export_async_function_with_context(self):
        # Seed 004's form.
        code = """\
            export async function handler(event, context) {
              console.log('Function:', context.functionName)
              return { fn: context.functionName, inv: context.invocationId,
                       ts: context.timestamp, event }
            }
            """
        post, _, shim = self.invoke_one(code, {"a": 1})
        body = post.json()
        self.assertEqual(body["fn"], "test-fn")
        self.assertEqual(body["inv"], post.request_id)
        self.assertRegex(body["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual(body["event"], {"a": 1})
        self.assertIn(b"Function: test-fn\n", post.output)

    def test_esm_export_default(self):
        code = "export default async function (event) { return { d: event.x } }\n"
        post, _, _ = self.invoke_one(code, {"x": 5})
        self.assert_response(post, {"d": 5})

    def test_esm_export_const_arrow_and_imports(self):
        code = """\
            import { createHash } from 'crypto';
            import path from 'node:path';
            import * as os from 'os';
            const suffix = '!';
            export const handler = async (event) => ({
              h: createHash('sha256').update(event.s).digest('hex').slice(0, 8),
              b: path.basename('/a/b.txt') + suffix,
              os: typeof os.hostname,
            });
            """
        post, _, _ = self.invoke_one(code, {"s": "abc"})
        self.assert_response(post, {"h": "ba7816bf", "b": "b.txt!", "os": "function"})

    def test_esm_sibling_module_dynamic_import_and_import_meta(self):
        files = {"helper.mjs": "export const twice = (x) => x * 2;\n"}
        code = """\
            import { twice } from './helper.mjs';
            export const handler = async (e) => {
              const os = await import('node:os');
              return { t: twice(e), url: import.meta.url.startsWith('file://'),
                       os: typeof os.platform };
            };
            """
        post, _, shim = self.invoke_one(code, 21, files=files)
        self.assert_response(post, {"t": 42, "url": True, "os": "function"})
        self.assertEqual(shim.text(), "")  # no experimental-feature notice in the user's logs

    def test_esm_export_list_with_alias(self):
        code = """\
            const impl = (event) => ({ via: 'alias', v: event.v });
            export { impl as handler };
            """
        post, _, _ = self.invoke_one(code, {"v": 3})
        self.assert_response(post, {"via": "alias", "v": 3})

    def test_exports_handler_sync(self):
        code = "exports.handler = function (event) { return event.v + 1; };\n"
        post, _, _ = self.invoke_one(code, {"v": 1})
        self.assert_response(post, 2)

    def test_module_exports_handler(self):
        code = "module.exports.handler = async (event) => ({ ok: true });\n"
        post, _, _ = self.invoke_one(code)
        self.assert_response(post, {"ok": True})

    def test_module_exports_object(self):
        code = """\
            const os = require('os');
            async function handler(event) { return { t: typeof os.cpus, e: event }; }
            module.exports = { handler };
            """
        post, _, _ = self.invoke_one(code, [1, 2])
        self.assert_response(post, {"t": "function", "e": [1, 2]})

    def test_callback_style(self):
        code = """\
            exports.handler = function (event, context, callback) {
              setTimeout(() => callback(null, { cb: event.v, id: context.awsRequestId }), 5);
            };
            """
        post, _, _ = self.invoke_one(code, {"v": "x"})
        self.assert_response(post, {"cb": "x", "id": post.request_id})

    def test_callback_style_error(self):
        code = """\
            exports.handler = (event, context, callback) => callback(new RangeError('too far'));
            """
        post, _, _ = self.invoke_one(code)
        self.assertEqual(post.kind, "error")
        self.assertEqual(post.json()["errorType"], "RangeError")
        self.assertEqual(post.json()["errorMessage"], "too far")

    def test_mjs_module_in_subdirectory(self):
        files = {"src/app.mjs": "export const main = async (e) => ({ where: 'src/app', e })\n"}
        post, _, _ = self.invoke_one(None, {"q": 1}, handler="src/app.main", files=files)
        self.assert_response(post, {"where": "src/app", "e": {"q": 1}})

    def test_relative_require_of_sibling(self):
        files = {"lib/util.js": "exports.twice = (x) => x * 2;\n"}
        code = "const { twice } = require('./lib/util');\nexports.handler = (e) => twice(e);\n"
        post, _, _ = self.invoke_one(code, 4, files=files)
        self.assert_response(post, 8)

    def test_undefined_result_is_null(self):
        post, _, _ = self.invoke_one("exports.handler = async () => {};\n")
        self.assert_response(post, None)

    def test_top_level_await(self):
        code = """\
            const v = await Promise.resolve(7);
            export const handler = async () => v;
            """
        post, _, _ = self.invoke_one(code)
        self.assert_response(post, 7)

    def test_user_scope_sees_commonjs_not_shim(self):
        code = """\
            exports.handler = () => ({
              req: typeof require, mod: typeof module, exp: typeof exports,
              file: __filename.endsWith('/index.js'), dir: typeof __dirname,
              proc: typeof process, timers: typeof setTimeout,
              client: typeof client, cls: typeof RuntimeClient, load: typeof loadHandler,
              inflight: typeof inflight, handler: typeof handler,
              globals: Object.keys(globalThis).filter((k) => /wisp|client|handler/i.test(k)),
            });
            """
        post, _, _ = self.invoke_one(code)
        self.assert_response(post, {
            "req": "function", "mod": "object", "exp": "object", "file": True,
            "dir": "string", "proc": "object", "timers": "function", "client": "undefined",
            "cls": "undefined", "load": "undefined", "inflight": "undefined",
            "handler": "undefined", "globals": []})


class NodeInvocation(InvocationTests, ShimTestCase):
    lang = "node"
    main_file = "index.js"
    default_handler = "index.handler"
    logging_code = """\
        exports.handler = async (event) => {
          console.log('start', event.i);
          console.error('to stderr', event.i);
          process.stdout.write('x'.repeat(event.big) + '\\nEND' + event.i + '\\n');
          return { i: event.i };
        };
        """
    counter_code = "let n = 0;\nexports.handler = async (e) => ({ n: ++n, e });\n"
    times_ten_code = "exports.handler = async (e) => e * 10;\n"
    identity_code = "exports.handler = (e) => e;\n"
    exit_code = "exports.handler = () => { console.log('bye'); process.exit(3); };\n"

    def test_context_fields(self):
        code = """\
            exports.handler = async (event, context) => {
              const r1 = context.getRemainingTimeInMillis();
              await new Promise((r) => setTimeout(r, 30));
              const r2 = context.getRemainingTimeInMillis();
              const c = Object.assign({}, context);
              delete c.getRemainingTimeInMillis;
              return { c, r1, r2, trace: process.env._X_AMZN_TRACE_ID };
            };
            """
        api, _ = self.start(code)
        rid = api.add_event({}, deadline_in_ms=3000, trace="Root=1-abc;Sampled=1",
                            client_context={"custom": {"k": "v"}},
                            identity={"cognitoIdentityId": "id1"})
        body = api.wait_posts(1)[0].json()
        c = body["c"]
        self.assertEqual(c["functionName"], "test-fn")
        self.assertEqual(c["functionVersion"], "$LATEST")
        self.assertEqual(c["invokedFunctionArn"],
                         "arn:aws:lambda:us-east-1:000000000000:function:test-fn")
        self.assertEqual(c["memoryLimitInMB"], "128")
        self.assertEqual(c["awsRequestId"], rid)
        self.assertEqual(c["invocationId"], rid)
        self.assertEqual(c["logGroupName"], "/aws/lambda/test-fn")
        self.assertEqual(c["logStreamName"], "2026/11/21/[$LATEST]abcdef")
        self.assertEqual(c["clientContext"], {"custom": {"k": "v"}})
        self.assertEqual(c["identity"], {"cognitoIdentityId": "id1"})
        self.assertIs(c["callbackWaitsForEmptyEventLoop"], True)
        self.assertRegex(c["timestamp"], r"^\d{4}-\d\d-\d\dT")
        self.assertEqual(body["trace"], "Root=1-abc;Sampled=1")
        self.assertTrue(0 < body["r2"] < body["r1"] <= 3000, body)
        self.assertGreaterEqual(body["r1"] - body["r2"], 25)
        self.assertGreater(body["r2"], 2000)

    def test_thrown_error(self):
        code = """\
            exports.handler = async (event) => {
              console.log('before');
              null.boom;
            };
            """
        post, _, shim = self.invoke_one(code)
        self.assertEqual(post.kind, "error")
        self.assertEqual(post.headers["lambda-runtime-function-error-type"], "TypeError")
        body = post.json()
        self.assertEqual(body["errorType"], "TypeError")
        self.assertIn("Cannot read properties of null", body["errorMessage"])
        self.assertTrue(any("index.js:3" in l for l in body["stackTrace"]), body)
        self.assertFalse(any("bootstrap.js" in l for l in body["stackTrace"]), body)
        self.assertIn(b"before\n", post.output)
        self.assertIn(b"TypeError: Cannot read properties of null", post.output)

    def test_thrown_non_error_and_custom_class(self):
        code = """\
            class NotReady extends Error {}
            exports.handler = async (event) => {
              if (event.k === 'str') throw 'plain string';
              if (event.k === 'custom') throw new NotReady('later');
              return 'ok';
            };
            """
        posts, _, _ = self.invoke(code, [{"k": "str"}, {"k": "custom"}, {"k": "none"}])
        self.assertEqual(posts[0].json()["errorType"], "Error")
        self.assertEqual(posts[0].json()["errorMessage"], "plain string")
        self.assertEqual(posts[1].json()["errorType"], "NotReady")
        self.assertEqual(posts[1].json()["errorMessage"], "later")
        self.assert_response(posts[2], "ok")  # the process survives handler errors

    def test_marshal_error(self):
        code = """\
            exports.handler = async (event) => {
              if (event.k === 'bigint') return { n: 10n };
              const o = {}; o.self = o; return o;
            };
            """
        posts, _, _ = self.invoke(code, [{"k": "bigint"}, {"k": "circular"}])
        for p in posts:
            self.assertEqual(p.kind, "error")
            self.assertEqual(p.json()["errorType"], "Runtime.MarshalError")
            self.assertEqual(p.headers["lambda-runtime-function-error-type"],
                             "Runtime.MarshalError")
        self.assertIn("BigInt", posts[0].json()["errorMessage"])
        self.assertIn("circular", posts[1].json()["errorMessage"])

    def test_uncaught_exception_during_invocation(self):
        code = """\
            exports.handler = async () => {
              setTimeout(() => { throw new SyntaxError('late failure'); }, 1);
              return new Promise(() => {});
            };
            """
        post, _, shim = self.invoke_one(code)
        self.assertEqual(post.kind, "error")
        self.assertEqual(post.json()["errorType"], "SyntaxError")
        self.assertEqual(post.json()["errorMessage"], "late failure")
        self.assertEqual(shim.wait_exit(), 1)

    def test_unhandled_rejection_during_invocation(self):
        code = """\
            exports.handler = async () => {
              Promise.reject(new Error('nobody waits'));
              await new Promise((r) => setTimeout(r, 200));
              return 'late';
            };
            """
        post, _, shim = self.invoke_one(code)
        self.assertEqual(post.kind, "error")
        self.assertEqual(post.json()["errorMessage"], "nobody waits")
        self.assertEqual(shim.wait_exit(), 1)


class NodeInitErrors(InitErrorTests, ShimTestCase):
    lang = "node"
    main_file = "index.js"
    default_handler = "index.handler"
    valid_code = "exports.handler = () => 1;\n"
    missing_module_message = "Cannot find module 'nothere'"

    def test_syntax_error_names_line(self):
        code = "exports.handler = async (event) => {\n  return 1;\n}}\n"
        body, shim = self.init_error(code)
        self.assertEqual(body["errorType"], "Runtime.UserCodeSyntaxError")
        self.assertEqual(body["errorMessage"], "SyntaxError: Unexpected token '}' (index.js:3)")
        self.assertIn("Runtime.UserCodeSyntaxError", shim.text())

    def test_syntax_error_in_esm_file_keeps_line(self):
        code = "import fs from 'fs';\nexport const handler = async () => {\n  let = = 2;\n};\n"
        body, _ = self.init_error(code)
        self.assertEqual(body["errorType"], "Runtime.UserCodeSyntaxError")
        self.assertIn("(index.js:3)", body["errorMessage"])

    def test_unexpected_end_of_input_points_into_the_file(self):
        code = "exports.handler = async (event) => {\n  return 1;\n"
        body, _ = self.init_error(code)
        self.assertEqual(body["errorType"], "Runtime.UserCodeSyntaxError")
        self.assertIn("Unexpected end of input", body["errorMessage"])
        self.assertRegex(body["errorMessage"], r"\(index\.js:[23]\)$")

    def test_handler_not_found(self):
        body, _ = self.init_error("exports.handler = async () => 1;\n", handler="index.handlr")
        self.assertEqual(body["errorType"], "Runtime.HandlerNotFound")
        self.assertEqual(body["errorMessage"], "index.handlr is undefined or not exported")

    def test_handler_not_a_function(self):
        body, _ = self.init_error("exports.handler = 42;\n")
        self.assertEqual(body["errorType"], "Runtime.HandlerNotFound")
        self.assertIn("is not a function", body["errorMessage"])

    def test_exception_at_import(self):
        code = "const x = 1;\nthrow new RangeError('config missing');\n"
        body, shim = self.init_error(code)
        self.assertEqual(body["errorType"], "Runtime.ImportModuleError")
        self.assertEqual(body["errorMessage"], "RangeError: config missing")
        self.assertTrue(any("index.js:2" in l for l in body["stackTrace"]), body)

    def test_require_of_missing_package(self):
        body, _ = self.init_error("const x = require('left-pad');\nexports.handler = x;\n")
        self.assertEqual(body["errorType"], "Runtime.ImportModuleError")
        self.assertIn("Cannot find module 'left-pad'", body["errorMessage"])


# ---------------------------------------------------------------------------------------------
# Python


class PythonHandlers(InvocationTests, ShimTestCase):
    lang = "python"
    main_file = "lambda_function.py"
    default_handler = "lambda_function.handler"
    logging_code = """\
        import sys
        def handler(event):
            print('start', event['i'])
            print('to stderr', event['i'], file=sys.stderr)
            sys.stdout.write('x' * event['big'] + '\\nEND%d\\n' % event['i'])
            return {'i': event['i']}
        """
    counter_code = ("n = 0\ndef handler(event):\n    global n\n    n += 1\n"
                    "    return {'n': n, 'e': event}\n")
    times_ten_code = "def handler(event):\n    return event * 10\n"
    identity_code = "def handler(event):\n    return event\n"
    exit_code = "import sys\ndef handler(event):\n    print('bye')\n    sys.exit(3)\n"

    def test_event_only_handler(self):
        code = """\
            def handler(event):
                numbers = event.get('numbers', [])
                return {'sum': sum(numbers), 'max': max(numbers) if numbers else None}
            """
        post, _, _ = self.invoke_one(code, {"numbers": [1, 5, 3]})
        self.assert_response(post, {"sum": 9, "max": 5})

    def test_event_and_context_handler(self):
        code = """\
            import os, time
            def handler(event, context):
                r1 = context.get_remaining_time_in_millis()
                time.sleep(0.03)
                r2 = context.get_remaining_time_in_millis()
                return {
                    'function_name': context.function_name,
                    'function_version': context.function_version,
                    'invoked_function_arn': context.invoked_function_arn,
                    'memory_limit_in_mb': context.memory_limit_in_mb,
                    'aws_request_id': context.aws_request_id,
                    'invocation_id': context.invocation_id,
                    'log_group_name': context.log_group_name,
                    'log_stream_name': context.log_stream_name,
                    'timestamp': context.timestamp,
                    'cc_custom': context.client_context.custom,
                    'identity': context.identity.cognito_identity_id,
                    'r1': r1, 'r2': r2,
                    'trace': os.environ.get('_X_AMZN_TRACE_ID'),
                }
            """
        api, _ = self.start(code)
        rid = api.add_event({}, trace="Root=1-py;Sampled=0", client_context={"custom": {"a": 1}},
                            identity={"cognitoIdentityId": "cid"})
        body = api.wait_posts(1)[0].json()
        self.assertEqual(body["function_name"], "test-fn")
        self.assertEqual(body["function_version"], "$LATEST")
        self.assertEqual(body["invoked_function_arn"],
                         "arn:aws:lambda:us-east-1:000000000000:function:test-fn")
        self.assertEqual(body["memory_limit_in_mb"], "128")
        self.assertEqual(body["aws_request_id"], rid)
        self.assertEqual(body["invocation_id"], rid)
        self.assertEqual(body["log_group_name"], "/aws/lambda/test-fn")
        self.assertEqual(body["log_stream_name"], "2026/11/21/[$LATEST]abcdef")
        self.assertRegex(body["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual(body["cc_custom"], {"a": 1})
        self.assertEqual(body["identity"], "cid")
        self.assertEqual(body["trace"], "Root=1-py;Sampled=0")
        self.assertTrue(0 < body["r2"] < body["r1"] <= 3000, body)
        self.assertGreater(body["r2"], 2000)

    def test_context_default_argument_and_varargs(self):
        files = {"a.py": "def h(event, context=None):\n    return context is not None\n",
                 "b.py": "def h(*args):\n    return len(args)\n",
                 "c.py": "def h(event, *, flag=False):\n    return 'one'\n",
                 "d.py": "class H:\n    def __call__(self, event):\n        return 'obj'\n"
                         "h = H()\n",
                 "e.py": "class H:\n    def m(self, event, context):\n"
                         "        return context.function_name\nh = H().m\n"}
        for mod, expected in (("a", True), ("b", 2), ("c", "one"), ("d", "obj"),
                              ("e", "test-fn")):
            post, _, _ = self.invoke_one(None, {}, handler=mod + ".h", files=files)
            self.assert_response(post, expected)

    def test_async_handler(self):
        code = """\
            import asyncio
            async def handler(event, context):
                await asyncio.sleep(0.001)
                return {'async': event['v']}
            """
        posts, _, _ = self.invoke(code, [{"v": 1}, {"v": 2}])
        self.assertEqual([p.json() for p in posts], [{"async": 1}, {"async": 2}])

    def test_none_result_is_null(self):
        post, _, _ = self.invoke_one("def handler(event):\n    pass\n")
        self.assert_response(post, None)

    def test_module_in_subdirectory_and_sibling_import(self):
        files = {"src/app.py": "import helper\ndef main(event):\n    return helper.twice(event)\n",
                 "helper.py": "def twice(x):\n    return 2 * x\n"}
        post, _, _ = self.invoke_one(None, 21, handler="src/app.main", files=files)
        self.assert_response(post, 42)

    def test_exception(self):
        code = """\
            def handler(event):
                print('before')
                raise ValueError('bad value %s' % event['v'])
            """
        posts, _, shim = self.invoke(code, [{"v": 1}, {"v": 2}])
        for i, post in enumerate(posts, 1):
            self.assertEqual(post.kind, "error")
            self.assertEqual(post.headers["lambda-runtime-function-error-type"], "ValueError")
            body = post.json()
            self.assertEqual(body["errorType"], "ValueError")
            self.assertEqual(body["errorMessage"], "bad value %d" % i)
            self.assertTrue(any("lambda_function.py" in l and "line 3" in l
                                for l in body["stackTrace"]), body)
            self.assertFalse(any("bootstrap.py" in l for l in body["stackTrace"]), body)
            self.assertIn(b"before\n", post.output)
            self.assertIn(b"Traceback (most recent call last)", post.output)
            self.assertIn(b"ValueError: bad value %d" % i, post.output)

    def test_marshal_error(self):
        code = """\
            import decimal
            def handler(event):
                if event == 'obj':
                    return {'o': object()}
                if event == 'set':
                    return {1, 2}
                if event == 'nan':
                    return float('nan')
                return {'d': decimal.Decimal('1.5'), 'i': decimal.Decimal('3')}
            """
        posts, _, _ = self.invoke(code, ["obj", "set", "nan", "dec"])
        for p in posts[:3]:
            self.assertEqual(p.kind, "error")
            self.assertEqual(p.json()["errorType"], "Runtime.MarshalError")
            self.assertEqual(p.headers["lambda-runtime-function-error-type"],
                             "Runtime.MarshalError")
        self.assertIn("object is not JSON serializable", posts[0].json()["errorMessage"])
        self.assertIn("set", posts[1].json()["errorMessage"])
        self.assert_response(posts[3], {"d": 1.5, "i": 3})


class PythonFraming(FramingTests, ShimTestCase):
    lang = "python"
    main_file = "lambda_function.py"
    default_handler = "lambda_function.handler"
    echo_code = "def handler(e):\n    return {'n': len(e['s']), 'tail': e['s'][-5:]}\n"


class PythonClientFraming(ClientFramingTests, unittest.TestCase):
    lang = "python"
    main_file = "lambda_function.py"
    default_handler = "lambda_function.handler"
    read_buffer_bytes = 64 * 1024  # RECEIVE_BUFFER_BYTES in bootstrap.py
    long_cut_step = 37
    echo_code = """\
        import hashlib
        def handler(event, context):
            return {"id": context.aws_request_id, "n": len(event["s"]),
                    "sha": hashlib.sha256(event["s"].encode()).hexdigest()}
        """
    context_code = """\
        import os
        def handler(event, context):
            return {"id": context.aws_request_id, "arn": context.invoked_function_arn,
                    "trace": os.environ.get("_X_AMZN_TRACE_ID"),
                    "left": context.get_remaining_time_in_millis(),
                    "custom": context.client_context.custom}
        """
    trace_code = """\
        import os
        def handler(event):
            seen = os.environ.get("_X_AMZN_TRACE_ID")
            os.environ["_X_AMZN_TRACE_ID"] = "set-by-the-handler"
            return {"seen": seen}
        """
    repeat_code = "def handler(event):\n    return 'é' * event['n']\n"
    timestamp_code = "def handler(event, context):\n    return {'timestamp': context.timestamp}\n"

    def text_length(self, text):
        return len(text)  # a Python string counts code points

    def test_context_attributes_read_late_keep_the_invocation_values(self):
        # The costly attributes are computed when first read; their values must be those of
        # the invocation: the timestamp is when the event arrived, not when it was read.
        code = """\
            import time
            def handler(event, context):
                started_ms = int(time.time() * 1000)
                time.sleep(0.3)
                stamp = context.timestamp
                again = context.timestamp
                identity = context.identity
                name = context.function_name
                context.function_name = "renamed"
                return {"timestamp": stamp, "started_ms": started_ms, "same": stamp is again,
                        "identity": [identity.cognito_identity_id,
                                     identity.cognito_identity_pool_id],
                        "no_client_context": context.client_context is None,
                        "left": context.get_remaining_time_in_millis(),
                        "names": [name, context.function_name],
                        "repr": repr(context)}
            """
        api = self.start(code)
        before_ms = int(time.time() * 1000)
        # No deadline: the fallback is Lambda's longest timeout; a malformed client context
        # reads as none.
        api.send(b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r0\r\n"
                 b"Lambda-Runtime-Client-Context: {not json\r\n"
                 b"Lambda-Runtime-Cognito-Identity: {\"cognitoIdentityId\": \"c1\"}\r\n"
                 b"Content-Length: 2\r\n\r\n{}")
        result = self.expect_result(api, "r0")
        stamp = datetime.datetime.strptime(result["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")
        stamp_ms = round(stamp.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)
        self.assertTrue(before_ms - 1 <= stamp_ms <= result["started_ms"], (before_ms, result))
        self.assertTrue(result["same"])
        self.assertEqual(result["identity"], ["c1", None])
        self.assertTrue(result["no_client_context"])
        self.assertTrue(15 * 60 * 1000 - 5000 < result["left"] <= 15 * 60 * 1000, result)
        self.assertEqual(result["names"], ["test-fn", "renamed"])
        self.assertEqual(result["repr"],
                         "LambdaContext(function_name='renamed', function_version='$LATEST', "
                         "aws_request_id='r0', invoked_function_arn=None)")
        # Renaming one context leaves the next one's name alone.
        api.send(ACCEPTED + next_response("r1", b"{}"))
        self.assertEqual(self.expect_result(api, "r1")["names"], ["test-fn", "renamed"])


class PythonInitErrors(InitErrorTests, ShimTestCase):
    lang = "python"
    main_file = "lambda_function.py"
    default_handler = "lambda_function.handler"
    valid_code = "def handler(event):\n    return 1\n"
    missing_module_message = "No module named 'nothere'"

    def test_syntax_error_names_line(self):
        body, shim = self.init_error("import os\n\ndef handler(event)\n    return 1\n")
        self.assertEqual(body["errorType"], "Runtime.UserCodeSyntaxError")
        self.assertIn("(lambda_function.py:3)", body["errorMessage"])
        self.assertTrue(body["errorMessage"].startswith("SyntaxError: "), body)
        self.assertIn("Runtime.UserCodeSyntaxError", shim.text())

    def test_handler_not_found(self):
        body, _ = self.init_error("def handler(event):\n    return 1\n",
                                  handler="lambda_function.handlr")
        self.assertEqual(body["errorType"], "Runtime.HandlerNotFound")
        self.assertIn("handlr", body["errorMessage"])

    def test_exception_at_import(self):
        body, _ = self.init_error("import os\nraise KeyError('DB_URL')\n")
        self.assertEqual(body["errorType"], "Runtime.ImportModuleError")
        self.assertIn("KeyError", body["errorMessage"])
        self.assertIn("DB_URL", body["errorMessage"])
        self.assertTrue(any("line 2" in l for l in body["stackTrace"]), body)

    def test_missing_package(self):
        body, _ = self.init_error("import requests_not_installed\ndef handler(e):\n    pass\n")
        self.assertEqual(body["errorType"], "Runtime.ImportModuleError")
        self.assertIn("ModuleNotFoundError", body["errorMessage"])


if __name__ == "__main__":
    unittest.main()
