"""Tests of the Node and Python runtime shims against a fake Runtime API.

Run from the repository root:  /usr/bin/python3 -m unittest discover -s tests/runtimes -v

Each test starts a shim as a subprocess with AWS_LAMBDA_RUNTIME_API pointing at an in-process
fake of wispd's Runtime API and LAMBDA_TASK_ROOT at a temporary directory holding the user's
code. Like wispd, the fake reads the shim's combined stdout+stderr pipe and drains it when a
response or error arrives, so the tests can check that every log line was written before the
response was sent.
"""

import fcntl
import json
import os
import queue
import select
import shutil
import socket
import subprocess
import sys
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


# ---------------------------------------------------------------------------------------------
# Node


class NodeFraming(FramingTests, ShimTestCase):
    lang = "node"
    main_file = "index.js"
    default_handler = "index.handler"
    echo_code = "exports.handler = (e) => ({ n: e.s.length, tail: e.s.slice(-5) });\n"



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


class NodeInvocation(ShimTestCase):
    lang = "node"
    main_file = "index.js"
    default_handler = "index.handler"

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

    def test_logs_are_in_the_pipe_before_the_response(self):
        code = """\
            exports.handler = async (event) => {
              console.log('start', event.i);
              console.error('to stderr', event.i);
              process.stdout.write('x'.repeat(event.big) + '\\nEND' + event.i + '\\n');
              return { i: event.i };
            };
            """
        posts, _, shim = self.invoke(code, [{"i": 1, "big": 10}, {"i": 2, "big": 1 << 20},
                                            {"i": 3, "big": 0}])
        for p in posts:
            i = p.json()["i"]
            self.assertIn(b"start %d\n" % i, p.output)
            self.assertIn(b"to stderr %d\n" % i, p.output)
            self.assertIn(b"END%d\n" % i, p.output)
        self.assertEqual(shim.text().count("x" * 1000), (1 << 20) // 1000 + 10 // 1000)
        # The shim prints nothing of its own on success.
        lines = [l for l in shim.text().splitlines() if l and not l.startswith("x")]
        self.assertEqual(lines, ["start 1", "to stderr 1", "END1", "start 2", "to stderr 2",
                                 "END2", "start 3", "to stderr 3", "END3"])

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

    def test_one_connection_for_many_invocations(self):
        code = "let n = 0;\nexports.handler = async (e) => ({ n: ++n, e });\n"
        posts, api, _ = self.invoke(code, list(range(8)))
        self.assertEqual([p.json() for p in posts], [{"n": i + 1, "e": i} for i in range(8)])
        self.assertEqual(api.connections, 1)

    def test_reconnects_when_server_closes_connection(self):
        code = "exports.handler = async (e) => e * 10;\n"
        posts, api, _ = self.invoke(code, [1, 2, 3], close_after_post=True)
        self.assertEqual([p.json() for p in posts], [10, 20, 30])
        # One connection per request/response pair plus the last /next.
        self.assertEqual(api.wait_connections(4), 4)

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

    def test_process_exit_in_handler(self):
        code = "exports.handler = () => { console.log('bye'); process.exit(3); };\n"
        api, shim = self.start(code)
        api.add_event({})
        self.assertEqual(shim.wait_exit(), 3)
        self.assertEqual(api.posts, [])
        self.assertIn("bye", shim.text())

    def test_invalid_event_json(self):
        api, shim = self.start("exports.handler = (e) => e;\n")
        api.add_event(None, raw=b"{not json")
        api.add_event({"fine": True})
        posts = api.wait_posts(2)
        self.assertEqual(posts[0].json()["errorType"], "Runtime.UnmarshalError")
        self.assert_response(posts[1], {"fine": True})


class NodeInitErrors(ShimTestCase):
    lang = "node"
    main_file = "index.js"
    default_handler = "index.handler"

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

    def test_missing_module_file(self):
        body, _ = self.init_error(None, handler="nothere.handler")
        self.assertEqual(body["errorType"], "Runtime.ImportModuleError")
        self.assertIn("Cannot find module 'nothere'", body["errorMessage"])

    def test_dotdot_module_path_refused(self):
        body, _ = self.init_error("exports.handler = () => 1;\n", handler="../index.handler")
        self.assertEqual(body["errorType"], "Runtime.MalformedHandlerName")
        body, _ = self.init_error("exports.handler = () => 1;\n", handler="a/../../x.handler")
        self.assertEqual(body["errorType"], "Runtime.MalformedHandlerName")

    def test_absolute_module_path_refused(self):
        body, _ = self.init_error(None, handler="/etc/passwd.handler")
        self.assertEqual(body["errorType"], "Runtime.MalformedHandlerName")

    def test_symlink_outside_task_root_refused(self):
        outside = tempfile.mkdtemp(prefix="wisp-outside-")
        self.addCleanup(shutil.rmtree, outside, True)
        target = os.path.join(outside, "evil.js")
        with open(target, "w") as f:
            f.write("exports.handler = () => 'escaped';\n")
        api, _ = self.start(None, handler="link.handler",
                            prepare=lambda root: os.symlink(target, os.path.join(root, "link.js")))
        body, _ = api.wait_init_error()
        self.assertEqual(body["errorType"], "Runtime.ImportModuleError")
        self.assertIn("outside the task root", body["errorMessage"])

    def test_malformed_handler_name(self):
        body, _ = self.init_error("exports.handler = () => 1;\n", handler="index")
        self.assertEqual(body["errorType"], "Runtime.MalformedHandlerName")

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


class PythonHandlers(ShimTestCase):
    lang = "python"
    main_file = "lambda_function.py"
    default_handler = "lambda_function.handler"

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

    def test_logs_are_in_the_pipe_before_the_response(self):
        code = """\
            import sys
            def handler(event):
                print('start', event['i'])
                print('to stderr', event['i'], file=sys.stderr)
                sys.stdout.write('y' * event['big'] + '\\nEND%d\\n' % event['i'])
                return {'i': event['i']}
            """
        posts, _, shim = self.invoke(code, [{"i": 1, "big": 10}, {"i": 2, "big": 1 << 20},
                                            {"i": 3, "big": 0}])
        for p in posts:
            i = p.json()["i"]
            self.assertIn(b"start %d\n" % i, p.output)
            self.assertIn(b"to stderr %d\n" % i, p.output)
            self.assertIn(b"END%d\n" % i, p.output)
        lines = [l for l in shim.text().splitlines() if l and not l.startswith("y")]
        self.assertEqual(lines, ["start 1", "to stderr 1", "END1", "start 2", "to stderr 2",
                                 "END2", "start 3", "to stderr 3", "END3"])

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

    def test_one_connection_for_many_invocations(self):
        code = "n = 0\ndef handler(event):\n    global n\n    n += 1\n    return [n, event]\n"
        posts, api, _ = self.invoke(code, list(range(8)))
        self.assertEqual([p.json() for p in posts], [[i + 1, i] for i in range(8)])
        self.assertEqual(api.connections, 1)

    def test_reconnects_when_server_closes_connection(self):
        code = "def handler(event):\n    return event * 10\n"
        posts, api, _ = self.invoke(code, [1, 2, 3], close_after_post=True)
        self.assertEqual([p.json() for p in posts], [10, 20, 30])
        # One connection per request/response pair plus the last /next.
        self.assertEqual(api.wait_connections(4), 4)

    def test_sys_exit_in_handler(self):
        api, shim = self.start("import sys\ndef handler(event):\n    sys.exit(4)\n")
        api.add_event({})
        self.assertEqual(shim.wait_exit(), 4)
        self.assertEqual(api.posts, [])

    def test_invalid_event_json(self):
        api, _ = self.start("def handler(event):\n    return event\n")
        api.add_event(None, raw=b"{not json")
        api.add_event({"fine": True})
        posts = api.wait_posts(2)
        self.assertEqual(posts[0].json()["errorType"], "Runtime.UnmarshalError")
        self.assert_response(posts[1], {"fine": True})


class PythonFraming(FramingTests, ShimTestCase):
    lang = "python"
    main_file = "lambda_function.py"
    default_handler = "lambda_function.handler"
    echo_code = "def handler(e):\n    return {'n': len(e['s']), 'tail': e['s'][-5:]}\n"


class PythonInitErrors(ShimTestCase):
    lang = "python"
    main_file = "lambda_function.py"
    default_handler = "lambda_function.handler"

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

    def test_missing_module_file(self):
        body, _ = self.init_error(None, handler="nothere.handler")
        self.assertEqual(body["errorType"], "Runtime.ImportModuleError")
        self.assertIn("nothere", body["errorMessage"])

    def test_dotdot_module_path_refused(self):
        body, _ = self.init_error("def handler(e):\n    return 1\n", handler="../x.handler")
        self.assertEqual(body["errorType"], "Runtime.MalformedHandlerName")

    def test_absolute_module_path_refused(self):
        body, _ = self.init_error(None, handler="/etc/passwd.handler")
        self.assertEqual(body["errorType"], "Runtime.MalformedHandlerName")

    def test_malformed_handler_name(self):
        body, _ = self.init_error("def handler(e):\n    return 1\n", handler="lambda_function")
        self.assertEqual(body["errorType"], "Runtime.MalformedHandlerName")

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
