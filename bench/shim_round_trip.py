"""Measures the per-invoke overhead of the runtime shims (not part of the unit tests).

    /usr/bin/python3 bench/shim_round_trip.py [invocations]

A minimal single-connection Runtime API server answers GET /next with a small event and waits
for the POST /response, over a Unix socket pair passed as WISP_RUNTIME_API_FD, the channel
wispd serves Wisp's shims on. Reported: the time from writing the /next response to
reading the complete /response request (the shim's own work: parse, call a trivial handler,
serialise, write), the full loop time per invocation (adds the 202 reply and the next GET), and
the CPU time the shim process used per invocation (user + system, from /proc/<pid>/stat): on a
loaded machine wall times swing with the scheduler while CPU time is what a shim costs.

Each shim runs twice: with the 202 to its POST /response written at once ("202 apart"), and
held back and written with the next event ("202+event"), as wispd does when the shim pipelined
its GET /next.

Unpinned, the figures are bimodal: a wake-up costs more when the scheduler puts the two
processes on different CPUs. To compare two versions of a shim, pin both to one CPU:
`taskset -c 1 /usr/bin/python3 bench/shim_round_trip.py`.
"""

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACCEPTED = (b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
            b"Content-Length: 15\r\n\r\n{\"status\":\"OK\"}")
CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU time of a process, all its threads included."""
    with open("/proc/%d/stat" % pid) as f:
        # The command name in parentheses may contain spaces: split after it. utime and stime
        # are fields 14 and 15 of the line, 12 and 13 after the name.
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_SECOND


def read_request(conn, buf):
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            raise EOFError
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            raise EOFError
        rest += chunk
    return head.split(b"\r\n")[0], rest[:length], rest[length:]


def bench(argv, code_file, code, handler, n, reply_with_next_event):
    root = tempfile.mkdtemp(prefix="wisp-bench-")
    with open(os.path.join(root, code_file), "w") as f:
        f.write(code)
    conn, runtime_end = socket.socketpair()
    env = {"PATH": "/usr/bin:/bin",
           # Unused while the channel works: the shims fall back to it only if it closes.
           "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9",
           "WISP_RUNTIME_API_FD": str(runtime_end.fileno()),
           "_HANDLER": handler, "LAMBDA_TASK_ROOT": root, "AWS_LAMBDA_FUNCTION_NAME": "bench",
           "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
           "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench", "AWS_LAMBDA_LOG_STREAM_NAME": "s",
           "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(argv, env=env, pass_fds=[runtime_end.fileno()])
    runtime_end.close()
    try:
        buf = b""
        event = b'{"name":"World","n":1}'
        shim_times, loop_times = [], []
        line, _, buf = read_request(conn, buf)  # first GET /next
        held_reply = b""
        warm_up = n // 10
        for i in range(n):
            if i == warm_up:
                cpu_start = cpu_seconds(proc.pid)
            deadline = int(time.time() * 1000) + 3000
            # No trace id: wispd sends one only when the caller did.
            resp = held_reply + (
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Lambda-Runtime-Aws-Request-Id: req-%d\r\nLambda-Runtime-Deadline-Ms: %d\r\n"
                b"Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:x:0:function:bench\r\n"
                b"Content-Length: %d\r\n\r\n" % (i, deadline, len(event))) + event
            t0 = time.perf_counter()
            conn.sendall(resp)
            line, body, buf = read_request(conn, buf)
            t1 = time.perf_counter()
            assert b"/response" in line, (line, body)
            if reply_with_next_event:
                held_reply = ACCEPTED
            else:
                conn.sendall(ACCEPTED)
            line, _, buf = read_request(conn, buf)  # next GET /next
            t2 = time.perf_counter()
            shim_times.append(t1 - t0)
            loop_times.append(t2 - t0)
        cpu_per_invoke = (cpu_seconds(proc.pid) - cpu_start) / (n - warm_up)
        return shim_times[warm_up:], loop_times[warm_up:], cpu_per_invoke
    finally:
        proc.kill()
        proc.wait()
        conn.close()
        shutil.rmtree(root, ignore_errors=True)


def report(name, shim, loop, cpu_per_invoke):
    us = lambda xs, q: sorted(xs)[int(len(xs) * q)] * 1e6
    print("%-17s next->response: median %6.1f us  p99 %6.1f us | full loop: median %6.1f us"
          "  p99 %6.1f us | shim CPU %6.1f us/invoke  (%d invokes)"
          % (name, statistics.median(shim) * 1e6, us(shim, 0.99), statistics.median(loop) * 1e6,
             us(loop, 0.99), cpu_per_invoke * 1e6, len(shim)))


def main():
    # Enough invocations that the CPU time, counted in clock ticks, is exact to a few percent.
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    shims = [
        ("node", ["/usr/bin/node", os.path.join(REPO_ROOT, "runtimes/node/bootstrap.js")],
         "index.js",
         "async function handler(event) { return { message: 'Hello ' + event.name }; }\n",
         "index.handler"),
        ("python",
         ["/usr/bin/python3", "-u", os.path.join(REPO_ROOT, "runtimes/python/bootstrap.py")],
         "lambda_function.py",
         "def handler(event):\n    return {'message': 'Hello ' + event['name']}\n",
         "lambda_function.handler"),
    ]
    for name, argv, code_file, code, handler in shims:
        for mode, reply_with_next_event in (("202 apart", False), ("202+event", True)):
            report("%s %s" % (name, mode),
                   *bench(argv, code_file, code, handler, n, reply_with_next_event))


if __name__ == "__main__":
    main()
