"""Wisp Python runtime shim.

Runs inside a sandbox as `/usr/bin/python3 -u /opt/wisp/runtime/python/bootstrap.py`. It loads
the user's handler, then loops on the AWS Lambda Runtime API served by wispd at
$AWS_LAMBDA_RUNTIME_API: GET /next, run the handler, POST /response or /error. The Runtime API is
the only channel to wispd; stdout/stderr belong to the user's function.

This is the hot path of every warm invoke: one keep-alive HTTP connection (TCP_NODELAY), the
event parsed once, nothing printed by the shim on success. Standard library only.

Several calls at once (AWS_LAMBDA_MAX_CONCURRENCY > 1, the function's instance_concurrency): the
shim loads the handler once, then forks that many processes in all, each serving one call at a
time over a connection of its own. Processes, as Lambda Managed Instances run Python: the GIL
lets only one thread run Python code at a time, so threads would serve CPU-bound handlers no
faster, and a process each keeps handlers written for Lambda (module-level clients and caches,
no locks) correct. Each process tags every line the function prints with the request id of its
call ("\x1f<request id>\x1f" first), by which wispd gives each call its own lines. If one
process dies, all go: wispd fails every call in flight on the instance.
"""

import importlib.util
import json
import os
import select
import socket
import sys
import time
import types

API_PREFIX = "/2018-06-01/runtime"
# Used when wispd sends no usable deadline: Lambda's maximum timeout (15 minutes).
FALLBACK_TIMEOUT_MS = 15 * 60 * 1000
# Longest response head we accept; a Runtime API head is a few hundred bytes.
MAX_HEAD_BYTES = 64 * 1024
# Size of the reusable receive buffer: holds any Runtime API head and a typical event at once.
RECEIVE_BUFFER_BYTES = 64 * 1024
THIS_FILE = os.path.abspath(__file__)
# Code object flags (Include/cpython/code.h).
CO_VARARGS = 0x04
CO_COROUTINE = 0x80

_env = os.environ


class ProtocolError(Exception):
    pass


class RuntimeClient:
    """Sequential HTTP/1.1 client of the Runtime API over one persistent connection.

    Hand-written over a socket rather than http.client: http.client imports email and ssl
    (~20 ms of every cold start here) and its header parsing doubles the shim's per-invoke cost.
    Requests go out in one write with TCP_NODELAY; responses are framed by Content-Length,
    chunked coding, or connection close.

    Every read first waits in poll(): a Unix-socket peer that consumes what the shim wrote wakes
    the shim's socket for writing, and a thread blocked in recv() takes that wake-up too (the
    kernel's stream-socket receive wait does not filter by event), costing a context switch on
    every invocation. poll() wakes only for input.

    Reads go into one preallocated buffer: `recv(n)` allocates an n-byte object per call, and
    one large enough for a big event costs an mmap, page faults and an munmap on every read. A
    body longer than the buffer is read straight into an object of its exact size.
    """

    def __init__(self, host, port, channel_fd=None):
        self._addr = (host, port)
        # wispd's Unix-socket channel, already connected: the first connection uses it (cheaper
        # than loopback TCP per message); should it ever close, the client reconnects over TCP.
        self._channel_fd = channel_fd
        self._sock = None
        self._input = None  # poll() for input on _sock
        self._buf = b""  # received bytes not consumed yet: the start of the next response
        self._receive_view = memoryview(bytearray(RECEIVE_BUFFER_BYTES))
        host_hdr = "[%s]" % host if ":" in host else host
        self._host_line = ("Host: %s:%d\r\n" % (host_hdr, port)).encode()
        self._next_request = (b"GET " + API_PREFIX.encode() + b"/invocation/next HTTP/1.1\r\n" +
                              self._host_line + b"\r\n")

    def _connect(self):
        sock = None
        if self._channel_fd is not None:
            fd, self._channel_fd = self._channel_fd, None
            try:
                sock = socket.socket(fileno=fd)
                sock.set_inheritable(False)  # the function's subprocesses get no part of it
            except OSError:
                sock = None  # not a socket after all: TCP it is
        if sock is None:
            sock = socket.create_connection(self._addr)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._input = select.poll()
        self._input.register(sock, select.POLLIN)
        self._buf = b""

    def _close(self):
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None
        self._input = None
        self._buf = b""

    def _receive_into(self, view):
        self._input.poll()
        return self._sock.recv_into(view)

    def _receive(self):
        """Returns the bytes that arrived next; b"" once the server closed the connection."""
        view = self._receive_view
        return view[:self._receive_into(view)].tobytes()

    def _receive_more(self):
        chunk = self._receive()
        if not chunk:
            raise ConnectionError("connection to the Runtime API closed")
        return chunk

    def _read_exact(self, buf, n):
        """Returns (n bytes, the rest) reading as needed; buf holds what was already read."""
        have = len(buf)
        if have >= n:
            return buf[:n], buf[n:]
        data = bytearray(n)
        data[:have] = buf
        view = memoryview(data)
        while have < n:
            received = self._receive_into(view[have:])
            if not received:
                raise ConnectionError("connection to the Runtime API closed")
            have += received
        return bytes(data), b""

    def _read_line(self, buf):
        while True:
            i = buf.find(b"\r\n")
            if i >= 0:
                return buf[:i], buf[i + 2:]
            if len(buf) > MAX_HEAD_BYTES:
                raise ProtocolError("line too long")
            buf += self._receive_more()

    def _read_until_close(self, buf):
        """The body of a response framed by the end of the connection; buf is its start."""
        parts = [buf]
        while True:
            chunk = self._receive()
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)

    def _read_response(self):
        """Reads one response: (status, headers by lower-case name, body). Interim (1xx)
        responses are skipped. What arrived after the response stays buffered for the next: a
        server may send the reply to a post and the next event in one write."""
        buf = self._buf
        while True:
            end = buf.find(b"\r\n\r\n")
            while end < 0:
                if len(buf) > MAX_HEAD_BYTES:
                    raise ProtocolError("response head too large")
                buf += self._receive_more()
                end = buf.find(b"\r\n\r\n")
            status = _status_of(buf)
            if not 100 <= status < 200:
                break
            buf = buf[end + 4:]  # an interim response: the final one follows
        # The lines between the status line and the empty line: only they are decoded.
        headers = {}
        for line in buf[buf.find(b"\r\n") + 2:end].decode("latin-1").split("\r\n"):
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        body_start = end + 4
        te = headers.get("transfer-encoding")
        cl = headers.get("content-length")
        if te is not None and "chunked" in te.lower():
            buf = buf[body_start:]
            parts = []
            while True:
                size_line, buf = self._read_line(buf)
                try:
                    size = int(size_line.split(b";")[0], 16)
                except ValueError:
                    raise ProtocolError("bad chunk size") from None
                if size == 0:
                    while True:  # trailers, then an empty line
                        trailer, buf = self._read_line(buf)
                        if not trailer:
                            break
                    break
                data, buf = self._read_exact(buf, size + 2)
                parts.append(data[:size])
            body = b"".join(parts)
        elif cl is not None:
            try:
                body_end = body_start + int(cl)
            except ValueError:
                raise ProtocolError("bad Content-Length %r" % cl) from None
            if body_end <= len(buf):  # the common case: the whole response is here
                body, buf = buf[body_start:body_end], buf[body_end:]
            else:
                body, buf = self._read_exact(buf[body_start:], body_end - body_start)
        elif status in (204, 304):
            body, buf = b"", buf[body_start:]
        else:
            body, buf = self._read_until_close(buf[body_start:]), b""
            headers["connection"] = "close"
        self._buf = buf
        connection = headers.get("connection")
        if connection is not None and connection.lower() == "close":
            self._close()
        return status, headers, body

    def _request(self, data):
        # Reconnect once if the connection dropped (e.g. an idle keep-alive connection that the
        # server closed).
        for attempt in (0, 1):
            try:
                if self._sock is None:
                    self._connect()
                self._sock.sendall(data)
                return self._read_response()
            except (OSError, ProtocolError):
                self._close()
                if attempt:
                    raise

    def next(self):
        return self._request(self._next_request)

    def _post_head(self, path, body_length, error_type=None):
        head = "POST %s%s HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % (
            API_PREFIX, path, body_length)
        if error_type is not None:
            head += "Lambda-Runtime-Function-Error-Type: %s\r\n" % _header_safe(error_type)
        return head.encode("latin-1") + self._host_line + b"\r\n"

    def post(self, path, body, error_type=None):
        return self._request(self._post_head(path, len(body), error_type) + body)

    def post_then_next(self, path, body):
        """Posts a result and asks for the next event in one write, without waiting for the 202
        in between: a round trip less per invocation. Returns (post reply, next reply)."""
        data = b"".join((self._post_head(path, len(body)), body, self._next_request))
        try:
            if self._sock is None:
                self._connect()
            self._sock.sendall(data)
            reply = self._read_response()
        except (OSError, ProtocolError):
            self._close()
            # Whether the result arrived is unknown: send it again; a repeat is refused (400),
            # never applied twice.
            return self.post(path, body), self.next()
        if self._sock is None:  # the server closed after answering the post
            return reply, self.next()
        try:
            return reply, self._read_response()
        except (OSError, ProtocolError):
            self._close()
            return reply, self.next()


def _status_of(response):
    """The status code of a response, given from its first byte."""
    if response.startswith(b"HTTP/1."):
        try:
            return int(response[9:12])
        except ValueError:
            pass
    status_line = response.partition(b"\r\n")[0].decode("latin-1")
    raise ProtocolError("bad status line %r" % status_line[:80])


def _header_safe(value):
    s = "".join(ch for ch in str(value) if " " <= ch <= "~")[:200]
    return s or "Error"


def take_channel_fd():
    """The fd of wispd's Runtime API channel (WISP_RUNTIME_API_FD), or None. The variable is
    removed so that nothing the function starts mistakes the number for its own."""
    value = _env.pop("WISP_RUNTIME_API_FD", None)
    try:
        fd = int(value)
    except (TypeError, ValueError):
        return None
    return fd if fd >= 0 else None


def _parse_host_port(spec):
    if not spec:
        return None
    if spec.startswith("["):
        end = spec.find("]")
        host, port = spec[1:end], spec[end + 2:]
    else:
        host, sep, port = spec.rpartition(":")
        if not sep:
            return spec, 80
    try:
        port = int(port)
    except ValueError:
        return None
    if not host or not 0 < port < 65536:
        return None
    return host, port


class InitError(Exception):
    def __init__(self, error_type, message, stack_trace=None):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.stack_trace = stack_trace or []


def _user_frames(tb):
    """Traceback entries without the shim's own frames, formatted like AWS's stackTrace."""
    import traceback  # error path only: keeps it out of every cold start
    frames = [f for f in traceback.extract_tb(tb) if os.path.abspath(f.filename) != THIS_FILE]
    return traceback.format_list(frames)


def _error_body(error_type, message, stack_trace):
    return json.dumps({"errorMessage": message, "errorType": error_type,
                       "stackTrace": stack_trace}).encode()


def _flush_stdio():
    # Every byte the function wrote must be in the pipe before wispd sees the response.
    streams = (sys.stdout, sys.stderr)
    if sys.stdout is not sys.__stdout__ or sys.stderr is not sys.__stderr__:
        # The function replaced a stream; what it wrote to the original must be out too.
        streams += (sys.__stdout__, sys.__stderr__)
    for stream in streams:
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # a user replaced the stream with something odd
            pass


def _log_exception(exc, frames):
    text = "[ERROR] %s: %s\nTraceback (most recent call last):\n%s" % (
        type(exc).__name__, exc, "".join(frames))
    try:
        sys.stderr.write(text if text.endswith("\n") else text + "\n")
    except Exception:
        pass


# ---------------------------------------------------------------------------------------------
# Loading the user's module


def _load_handler():
    spec = _env.get("_HANDLER", "")
    task_root = _env.get("LAMBDA_TASK_ROOT") or "/var/task"
    module_path, dot, fn_name = spec.rpartition(".")
    if not dot or not module_path or not fn_name or not fn_name.isidentifier():
        raise InitError("Runtime.MalformedHandlerName",
                        "Bad handler %r: expected <module>.<function>" % spec)
    if (module_path.startswith("/") or os.path.isabs(module_path) or ".." in module_path
            or "\0" in module_path):
        raise InitError("Runtime.MalformedHandlerName",
                        "Bad handler %r: the module path must be relative to the task root "
                        "without '..'" % spec)
    # "src/app" and "pkg.mod" both name a file under the task root.
    rel = module_path.replace(".", "/")
    file_path = os.path.join(task_root, rel + ".py")
    if not os.path.isfile(file_path):
        raise InitError("Runtime.ImportModuleError",
                        "Unable to import module '%s': No module named '%s' (no %s.py in %s)"
                        % (module_path, module_path, rel, task_root))
    real_root = os.path.realpath(task_root)
    real_file = os.path.realpath(file_path)
    if not real_file.startswith(real_root.rstrip("/") + "/"):
        raise InitError("Runtime.ImportModuleError",
                        "Unable to import module '%s': it resolves outside the task root"
                        % module_path)

    # Sibling modules of the user's code import as in AWS: the task root is on sys.path, and the
    # shim's own directory is not.
    if sys.path and sys.path[0] == os.path.dirname(THIS_FILE):
        del sys.path[0]
    if task_root not in sys.path:
        sys.path.insert(0, task_root)
    mod_name = rel.replace("/", ".")
    try:
        mod_spec = importlib.util.spec_from_file_location(mod_name, file_path)
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[mod_name] = module
        mod_spec.loader.exec_module(module)
    except SyntaxError as e:
        where = os.path.basename(e.filename or file_path)
        if e.lineno:
            where = "%s:%d" % (where, e.lineno)
        raise InitError("Runtime.UserCodeSyntaxError",
                        "%s: %s (%s)" % (type(e).__name__, e.msg, where)) from None
    except Exception as e:
        raise InitError("Runtime.ImportModuleError",
                        "Unable to import module '%s': %s: %s" % (module_path, type(e).__name__, e),
                        _user_frames(e.__traceback__)) from None

    handler = getattr(module, fn_name, None)
    if handler is None:
        raise InitError("Runtime.HandlerNotFound",
                        "Handler '%s' missing on module '%s' (%s is undefined)"
                        % (fn_name, module_path, spec))
    if not callable(handler):
        raise InitError("Runtime.HandlerNotFound", "%s is not a function" % spec)
    return handler


def _wants_context(handler):
    """Pass the context only to handlers that take two positional parameters (or *args)."""
    if isinstance(handler, types.FunctionType):
        code = handler.__code__
        # Plain functions, the common case: read the code object, no `inspect` import.
        return bool(code.co_flags & CO_VARARGS) or code.co_argcount >= 2
    import inspect
    try:
        sig = inspect.signature(handler)
    except (TypeError, ValueError):
        return True
    positional = 0
    for p in sig.parameters.values():
        if p.kind == p.VAR_POSITIONAL:
            return True
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional >= 2


# ---------------------------------------------------------------------------------------------
# Context


class CognitoIdentity:
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, value):
        value = value if isinstance(value, dict) else {}
        self.cognito_identity_id = value.get("cognitoIdentityId")
        self.cognito_identity_pool_id = value.get("cognitoIdentityPoolId")


class Client:
    __slots__ = ("installation_id", "app_title", "app_version_name", "app_version_code",
                 "app_package_name")

    def __init__(self, value):
        value = value if isinstance(value, dict) else {}
        self.installation_id = value.get("installation_id")
        self.app_title = value.get("app_title")
        self.app_version_name = value.get("app_version_name")
        self.app_version_code = value.get("app_version_code")
        self.app_package_name = value.get("app_package_name")


class ClientContext:
    __slots__ = ("client", "custom", "env")

    def __init__(self, value):
        value = value if isinstance(value, dict) else {}
        self.client = Client(value.get("client")) if value.get("client") is not None else None
        self.custom = value.get("custom")
        self.env = value.get("env")


def _parse_json_header(value):
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


class _ComputedOnFirstRead:
    """A context attribute that costs time to compute and that few handlers read: computed on
    first access and stored in the instance, where later reads and assignments find it like any
    other attribute (a non-data descriptor yields to the instance's __dict__)."""

    def __init__(self, compute):
        self._compute = compute
        self._name = compute.__name__

    def __get__(self, context, owner=None):
        if context is None:
            return self
        value = context.__dict__[self._name] = self._compute(context)
        return value


class LambdaContext:
    # The same for every invocation of this process: class attributes, not per-call copies.
    # A prewarmed instance sets them once it is specialised.
    function_name = _env.get("AWS_LAMBDA_FUNCTION_NAME")
    function_version = _env.get("AWS_LAMBDA_FUNCTION_VERSION")
    memory_limit_in_mb = _env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    log_group_name = _env.get("AWS_LAMBDA_LOG_GROUP_NAME")
    log_stream_name = _env.get("AWS_LAMBDA_LOG_STREAM_NAME")
    # A project's function (the Vercel-style API): the project it belongs to, else None.
    project_id = _env.get("WISP_PROJECT_ID")

    def __init__(self, request_id, headers):
        self.aws_request_id = request_id
        self.invocation_id = request_id
        self.invoked_function_arn = headers.get("lambda-runtime-invoked-function-arn")
        self._headers = headers
        self._received_at = time.time()

    @_ComputedOnFirstRead
    def timestamp(self):
        return "%s.%03dZ" % (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self._received_at)),
                             int(self._received_at * 1000) % 1000)

    @_ComputedOnFirstRead
    def identity(self):
        return CognitoIdentity(
            _parse_json_header(self._headers.get("lambda-runtime-cognito-identity")))

    @_ComputedOnFirstRead
    def client_context(self):
        cc = _parse_json_header(self._headers.get("lambda-runtime-client-context"))
        return ClientContext(cc) if cc is not None else None

    @_ComputedOnFirstRead
    def _deadline_ms(self):
        try:
            return int(self._headers.get("lambda-runtime-deadline-ms"))
        except (TypeError, ValueError):
            return int(self._received_at * 1000) + FALLBACK_TIMEOUT_MS

    def get_remaining_time_in_millis(self):
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def __repr__(self):
        return ("LambdaContext(function_name=%r, function_version=%r, aws_request_id=%r, "
                "invoked_function_arn=%r)" % (self.function_name, self.function_version,
                                              self.aws_request_id, self.invoked_function_arn))


# ---------------------------------------------------------------------------------------------
# The invocation loop


def _json_default(obj):
    # AWS's Python runtime serialises Decimal (common from DynamoDB) as a number.
    import decimal
    if isinstance(obj, decimal.Decimal):
        return int(obj) if obj == obj.to_integral_value() else float(obj)
    raise TypeError("Object of type %s is not JSON serializable" % type(obj).__name__)


def _check_post(reply, what):
    status, _, data = reply
    if 200 <= status < 300:
        return
    sys.stderr.write("wisp runtime: %s rejected with HTTP %d: %s\n"
                     % (what, status, data[:500].decode("utf-8", "replace")))
    if status >= 500:
        sys.stderr.flush()
        os._exit(1)


def _post_invocation_error(client, request_id, error_type, message, stack_trace):
    _flush_stdio()
    _check_post(client.post("/invocation/%s/error" % request_id,
                            _error_body(error_type, message, stack_trace), error_type), "error")


def _await_specialisation(client):
    """A prewarmed instance starts before any function is chosen for it. Its first GET /next
    answers with the Lambda-Runtime-Wisp-Specialize header and the function's environment (its
    code is already visible under /var/task by then); from here on it is that function's."""
    status, headers, body = client.next()
    if status != 200 or "lambda-runtime-wisp-specialize" not in headers:
        sys.stderr.write("wisp runtime: expected a specialisation, got HTTP %d\n" % status)
        sys.exit(1)
    for key, value in json.loads(body).get("env", {}).items():
        _env[key] = str(value)
    _env.pop("WISP_PREWARMED", None)
    LambdaContext.function_name = _env.get("AWS_LAMBDA_FUNCTION_NAME")
    LambdaContext.function_version = _env.get("AWS_LAMBDA_FUNCTION_VERSION")
    LambdaContext.memory_limit_in_mb = _env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    LambdaContext.log_group_name = _env.get("AWS_LAMBDA_LOG_GROUP_NAME")
    LambdaContext.log_stream_name = _env.get("AWS_LAMBDA_LOG_STREAM_NAME")
    LambdaContext.project_id = _env.get("WISP_PROJECT_ID")


class _CallLines:
    """sys.stdout or sys.stderr of a process serving one of several calls at once: while a call
    runs, each line goes out whole (one write, so lines of processes sharing the pipe do not
    mix up) and tagged with the call's request id."""

    tag = None  # "\x1f<request id>\x1f" of the call running in this process

    def __init__(self, stream):
        self._stream = stream
        self._partial = ""

    def write(self, text):
        tag = _CallLines.tag
        if tag is None:
            return self._stream.write(text)
        if "\n" not in text:
            self._partial += text
            return len(text)
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        self._stream.write("".join(tag + line + "\n" for line in lines))
        return len(text)

    def flush(self):
        if self._partial:
            partial, self._partial = self._partial, ""
            self._stream.write((_CallLines.tag or "") + partial + "\n")
        self._stream.flush()

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _fork_call_processes(count, client, hp):
    """Forks count - 1 more processes, each with a client of its own; returns this process's.
    The first process keeps wispd's channel; any that ends takes the others with it."""
    import ctypes
    import signal
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    children = []
    for _ in range(count - 1):
        _flush_stdio()
        pid = os.fork()
        if pid:
            children.append(pid)
        else:
            # The parent's end of the channel is not this process's to use.
            client._close()
            libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
            if os.getppid() == 1:
                os._exit(1)  # the parent ended before prctl took effect
            return RuntimeClient(*hp)

    def on_child_exit(signum, frame):
        # A process that ends ends the instance: wispd then fails the calls in flight on it.
        # (Only these: a subprocess a handler started is its own business.)
        for child in children:
            try:
                ended = os.waitpid(child, os.WNOHANG)[0] == child
            except ChildProcessError:
                ended = True
            if ended:
                os._exit(1)

    signal.signal(signal.SIGCHLD, on_child_exit)
    return client


def main():
    hp = _parse_host_port(_env.get("AWS_LAMBDA_RUNTIME_API"))
    if hp is None:
        sys.stderr.write("wisp runtime: AWS_LAMBDA_RUNTIME_API is missing or malformed\n")
        sys.exit(1)
    client = RuntimeClient(*hp, channel_fd=take_channel_fd())

    if _env.get("WISP_PREWARMED") == "1":
        _await_specialisation(client)
    try:
        concurrency = int(_env.get("AWS_LAMBDA_MAX_CONCURRENCY", "1"))
    except ValueError:
        concurrency = 1
    if concurrency > 1:
        # Before the handler loads: a logging handler it sets up keeps the stream it finds.
        sys.stdout = _CallLines(sys.stdout)
        sys.stderr = _CallLines(sys.stderr)

    try:
        handler = _load_handler()
    except InitError as e:
        sys.stderr.write("%s: %s\n" % (e.error_type, e.message))
        _flush_stdio()
        _check_post(client.post("/init/error", _error_body(e.error_type, e.message,
                                                           e.stack_trace), e.error_type),
                    "init error")
        sys.exit(1)

    pass_context = _wants_context(handler)
    is_async = (isinstance(handler, types.FunctionType)
                and bool(handler.__code__.co_flags & CO_COROUTINE))
    loop = None
    dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False,
                             default=_json_default).encode
    loads = json.loads
    environ = os.environ
    if concurrency > 1:
        client = _fork_call_processes(concurrency, client, hp)

    following = None  # the next event, when it was asked for together with a result
    while True:
        status, headers, body = following if following is not None else client.next()
        following = None
        if status != 200:
            sys.stderr.write("wisp runtime: /next failed with HTTP %d: %s\n"
                             % (status, body[:500].decode("utf-8", "replace")))
            sys.exit(1)
        request_id = headers.get("lambda-runtime-aws-request-id")
        if not request_id:
            sys.stderr.write("wisp runtime: /next response without Lambda-Runtime-Aws-Request-Id\n")
            sys.exit(1)
        if concurrency > 1:
            _CallLines.tag = "\x1f%s\x1f" % request_id
        trace = headers.get("lambda-runtime-trace-id")
        if trace is not None:
            environ["_X_AMZN_TRACE_ID"] = trace
        elif "_X_AMZN_TRACE_ID" in environ:
            del environ["_X_AMZN_TRACE_ID"]

        try:
            event = loads(body) if body else {}
        except ValueError as e:
            _post_invocation_error(client, request_id, "Runtime.UnmarshalError",
                                   "Unable to parse event as JSON: %s" % e, [])
            continue

        context = LambdaContext(request_id, headers)
        try:
            result = handler(event, context) if pass_context else handler(event)
            if is_async or hasattr(type(result), "__await__"):
                if loop is None:
                    import asyncio
                    loop = asyncio.new_event_loop()
                    asyncio.set_event_loop(loop)
                result = loop.run_until_complete(result)
        except Exception as e:
            frames = _user_frames(e.__traceback__)
            _log_exception(e, frames)
            _post_invocation_error(client, request_id, type(e).__name__, str(e), frames)
            continue

        try:
            payload = dumps(result).encode()
        except (TypeError, ValueError, OverflowError, RecursionError) as e:
            message = "Unable to marshal response: %s" % e
            sys.stderr.write("[ERROR] Runtime.MarshalError: %s\n" % message)
            _post_invocation_error(client, request_id, "Runtime.MarshalError", message, [])
            continue

        _flush_stdio()
        reply, following = client.post_then_next("/invocation/%s/response" % request_id, payload)
        _check_post(reply, "response")


if __name__ == "__main__":
    main()
