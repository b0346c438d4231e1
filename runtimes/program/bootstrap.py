"""Wisp program-style runtime shim (the program API's functions: whole programs).

Runs inside a sandbox as `/usr/bin/python3 -u /opt/wisp/runtime/program/bootstrap.py PROGRAM...`
where PROGRAM is the function: a compiled Go binary, or `python3 main.py`, or `node main.js`
under /var/task. It loops on the AWS Lambda Runtime API like the other shims; for each event it
runs the program once with the event's JSON in FUNCTION_PAYLOAD, and posts what the program
printed: the last non-empty line of stdout if it is JSON (earlier lines go to the logs), else
all of stdout if that is JSON, else stdout as a JSON string. A non-zero exit is an error, and
everything the program printed (stdout and stderr) goes to the logs. The request id (stable
across retries of one async invocation) is in INVOCATION_ID and AWS_REQUEST_ID; the call's
headers (the program API's `headers`, which reach every function as the Lambda client
context's "custom" object) are in FUNCTION_HEADERS, as a JSON object ("{}" without any).

The Runtime API client is the Python shim's (runtimes/python/bootstrap.py): one hand-written
keep-alive HTTP client for both. Standard library only.
"""

import importlib.util
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# stdout beyond this is cut before parsing: the response limit is wispd's to enforce, but a
# runaway program must not exhaust the shim's memory first.
MAX_STDOUT_BYTES = 64 * 1024 * 1024
# Linux caps one environment string ("FUNCTION_PAYLOAD=..." and its NUL) at 32 pages
# (MAX_ARG_STRLEN); a larger event cannot reach the program the way the program API defines.
MAX_PAYLOAD_BYTES = 32 * 4096 - len("FUNCTION_PAYLOAD=") - 1
# Lines of stderr quoted in the error message of a failed run.
ERROR_TAIL_LINES = 5


def _load_client_module():
    path = os.path.join(os.path.dirname(HERE), "python", "bootstrap.py")
    spec = importlib.util.spec_from_file_location("wisp_python_shim", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


shim = _load_client_module()


def _result_of(stdout):
    """(result, log lines) from a program's stdout."""
    text = stdout.decode("utf-8", "replace")
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None, []
    try:
        return json.loads(lines[-1]), lines[:-1]
    except ValueError:
        pass
    try:
        return json.loads(text), []
    except ValueError:
        return text.rstrip("\n"), []


def _headers_of(client_context):
    """The call's headers, as JSON text, from the Lambda-Runtime-Client-Context header."""
    if client_context:
        try:
            custom = json.loads(client_context).get("custom")
            if isinstance(custom, dict):
                return json.dumps(custom, separators=(",", ":"), ensure_ascii=False)
        except (ValueError, AttributeError):
            pass
    return "{}"


def _run(program, body, request_id, base_env, headers_json="{}"):
    payload = body.decode("utf-8", "replace") if body else "{}"
    size = len(payload.encode())
    if size > MAX_PAYLOAD_BYTES:
        message = ("the event is %d bytes; a program-style function receives it in "
                   "FUNCTION_PAYLOAD, which Linux limits to %d bytes" % (size, MAX_PAYLOAD_BYTES))
        return None, ("Runtime.PayloadTooLarge", message)
    env = dict(base_env)
    env["FUNCTION_PAYLOAD"] = payload
    env["INVOCATION_ID"] = request_id
    env["AWS_REQUEST_ID"] = request_id
    env["FUNCTION_HEADERS"] = headers_json
    try:
        proc = subprocess.run(program, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env, cwd="/var/task")
    except OSError as e:
        return None, ("Runtime.InvalidEntrypoint", "cannot run %s: %s" % (program[0], e))
    if proc.stderr:
        sys.stderr.write(proc.stderr.decode("utf-8", "replace"))
        if not proc.stderr.endswith(b"\n"):
            sys.stderr.write("\n")
    stdout = proc.stdout[:MAX_STDOUT_BYTES]
    if proc.returncode != 0:
        # No result: everything it printed is what there is to read about the failure.
        text = stdout.decode("utf-8", "replace")
        if text:
            sys.stderr.write(text if text.endswith("\n") else text + "\n")
    else:
        result, log_lines = _result_of(stdout)
        for line in log_lines:
            sys.stderr.write(line + "\n")
    if proc.returncode != 0:
        if proc.returncode < 0:
            what = "signal %d" % -proc.returncode
        else:
            what = "exit status %d" % proc.returncode
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-ERROR_TAIL_LINES:]
        message = what + (": " + " | ".join(tail) if tail else "")
        return None, ("Runtime.ExitError", message)
    return result, None


def main():
    program = sys.argv[1:]
    hp = shim._parse_host_port(os.environ.get("AWS_LAMBDA_RUNTIME_API"))
    if hp is None:
        sys.stderr.write("wisp program runtime: AWS_LAMBDA_RUNTIME_API is missing or malformed\n")
        sys.exit(1)
    client = shim.RuntimeClient(*hp, channel_fd=shim.take_channel_fd())
    if not program or not os.path.exists(program[-1]):
        message = "the program %r does not exist" % (program[-1] if program else "")
        sys.stderr.write("Runtime.InvalidEntrypoint: %s\n" % message)
        shim._check_post(client.post("/init/error", shim._error_body(
            "Runtime.InvalidEntrypoint", message, []), "Runtime.InvalidEntrypoint"), "init error")
        sys.exit(1)

    # The program sees the function's environment, not the platform's plumbing.
    base_env = {k: v for k, v in os.environ.items()
                if k not in ("AWS_LAMBDA_RUNTIME_API", "_HANDLER")}
    encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

    while True:
        status, headers, body = client.next()
        if status != 200:
            sys.stderr.write("wisp program runtime: /next failed with HTTP %d\n" % status)
            sys.exit(1)
        request_id = headers.get("lambda-runtime-aws-request-id")
        if not request_id:
            sys.stderr.write("wisp program runtime: /next response without a request id\n")
            sys.exit(1)
        result, error = _run(program, body, request_id, base_env,
                             _headers_of(headers.get("lambda-runtime-client-context")))
        sys.stderr.flush()
        if error is not None:
            error_type, message = error
            shim._check_post(client.post("/invocation/%s/error" % request_id,
                                         shim._error_body(error_type, message, []), error_type),
                             "error")
        else:
            shim._check_post(client.post("/invocation/%s/response" % request_id,
                                         encode(result).encode()), "response")


if __name__ == "__main__":
    main()
