#!/usr/bin/python3
"""The Lambda API's cost: a warm Invoke through POST /2015-03-31/functions/{name}/invocations
beside the same call of the same function on POST /v1/functions/{id}/invoke, and
create-from-zip to Active for a 5 MB package with node_modules.

    bench/lambda_api.py [BUILD_DIR] [--rounds N] [--requests N] [--create-samples N]

Invoke: one wispd (auth off), one trivial Node function; bench's load client at concurrency 1
over one keep-alive connection, in paired rounds alternating /v1 and the Lambda API (each first in every
other round) so that the machine's drift hits both alike; per round and as medians: client latency p50/p99 and wispd's
CPU per call. Create: CreateFunction with a 5 MB zip (a handler, node_modules with a module and
5 MB of incompressible filler), timed until the POST is answered (the package unpacked and
stored: State Pending) and until GetFunction shows State Active (polled every 2 ms).
Also `bench/run --only lambda`. A benchmark, not a test: it fails only when calls fail."""

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "e2e"))

import lambda_packages  # noqa: E402
import wisp_fixture  # noqa: E402

CODE = "exports.handler = async (event) => ({ n: event.n });"
PACKAGE_FILLER_BYTES = 5 << 20


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def invoke_round(client, wisp, path, body, expect, requests):
    cmd = [client, "--port", str(wisp.port), "--path", path, "--body", body, "--expect", expect,
           "--connections", "1", "--warmup-requests", "200", "--requests", str(requests)]
    before = cpu_seconds(wisp.proc.pid)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    after = cpu_seconds(wisp.proc.pid)
    if out.returncode != 0:
        raise SystemExit(f"load client failed: {out.stderr}")
    result = json.loads(out.stdout)
    if result["ok"] != result["requests"] or result["warmup_failures"]:
        raise SystemExit(f"calls failed: {result}")
    calls = result["requests"] + result["warmup_requests"]
    return {"p50_us": result["latency_us"]["p50"], "p99_us": result["latency_us"]["p99"],
            "cpu_us": (after - before) / calls * 1e6}


def create_to_active(wisp, name, package_b64):
    body = json.dumps({"FunctionName": name, "Runtime": "nodejs20.x",
                       "Handler": "src/handlers/main.handler", "Role": "r",
                       "Code": {"ZipFile": package_b64},
                       "Environment": {"Variables": {"GREETING": "hi"}}}).encode()
    client = wisp.client()
    try:
        t0 = time.monotonic()
        r = client.request("POST", "/2015-03-31/functions", raw=body)
        answered = time.monotonic()
        if r.status != 201:
            raise SystemExit(f"CreateFunction failed: {r}")
        while True:
            got = client.request("GET", f"/2015-03-31/functions/{name}/configuration")
            state = got.json["State"]
            if state == "Active":
                break
            if state == "Failed" or time.monotonic() - t0 > 60:
                raise SystemExit(f"{name} did not become Active: {got}")
            time.sleep(0.002)
        active = time.monotonic()
        invoked = client.request("POST", f"/2015-03-31/functions/{name}/invocations",
                                 raw=b'{"who": "bench"}')
        if invoked.status != 200 or invoked.json.get("message") != "hi bench":
            raise SystemExit(f"the created function did not answer: {invoked}")
        client.request("DELETE", f"/2015-03-31/functions/{name}")
    finally:
        client.close()
    return {"answered_ms": (answered - t0) * 1e3, "active_ms": (active - t0) * 1e3}


def run(binary, load_client, rounds=5, requests=3000, create_samples=5, log=print):
    """Runs both measurements; returns their figures (bench/run stores them)."""
    os.environ.setdefault("WISP_BIN", binary)
    wisp = wisp_fixture.WispServer(binary=binary).start()
    try:
        name = "lambda-bench"
        fid = wisp.create(name=name, runtime="node", code=CODE)
        wisp.wait_state(fid)
        sides = {
            "v1": (f"/v1/functions/{fid}/invoke", '{"event":{"n":1}}', '"success"'),
            "lambda": (f"/2015-03-31/functions/{name}/invocations", '{"n":1}', '"n":1'),
        }
        rows = {side: [] for side in sides}
        for i in range(rounds):
            # Each side goes first in every other round: neither gains from going second.
            order = list(sides) if i % 2 == 0 else list(reversed(list(sides)))
            for side in order:
                path, body, expect = sides[side]
                row = invoke_round(load_client, wisp, path, body, expect, requests)
                rows[side].append(row)
                log(f"  round {i + 1} {side:6}: p50 {row['p50_us']:7.1f} us  p99 "
                    f"{row['p99_us']:8.1f} us  wispd cpu {row['cpu_us']:5.1f} us/call")
        invoke = {side: {k: round(statistics.median(r[k] for r in rows[side]), 1)
                         for k in ("p50_us", "p99_us", "cpu_us")} for side in sides}
        for side in sides:
            invoke[side]["rounds"] = rows[side]
        # The cost of the Lambda path: the median over rounds of each round's difference, so
        # the machine's drift between rounds cancels.
        invoke["lambda_minus_v1"] = {
            k: round(statistics.median(l[k] - v[k] for l, v in zip(rows["lambda"], rows["v1"])), 1)
            for k in ("p50_us", "p99_us", "cpu_us")}
        invoke["requests_per_round"] = requests

        package = lambda_packages.app_zip(1, padding=PACKAGE_FILLER_BYTES)
        package_b64 = base64.b64encode(package).decode()
        samples = []
        for i in range(create_samples):
            sample = create_to_active(wisp, f"lambda-bench-zip-{i}", package_b64)
            samples.append(sample)
            log(f"  create {i + 1}: answered {sample['answered_ms']:6.1f} ms  Active "
                f"{sample['active_ms']:6.1f} ms")
        create = {"package_bytes": len(package),
                  "answered_ms_median": round(statistics.median(s["answered_ms"] for s in samples), 1),
                  "active_ms_median": round(statistics.median(s["active_ms"] for s in samples), 1),
                  "active_ms_max": round(max(s["active_ms"] for s in samples), 1),
                  "samples": samples}
        return {"invoke": invoke, "create_from_zip": create}
    finally:
        try:
            wisp.stop(check=False)
        finally:
            wisp.kill()
            wisp.cleanup()


def print_figures(figures, out=print):
    inv = figures["invoke"]
    out("warm Invoke, c=1, medians of %d paired rounds of %d calls:" % (
        len(inv["v1"]["rounds"]), inv["requests_per_round"]))
    for side, label in (("v1", "POST /v1/functions/{id}/invoke          "),
                        ("lambda", "POST /2015-03-31/functions/{name}/invocations")):
        out("  %s p50 %7.1f us  p99 %8.1f us  wispd cpu %5.1f us/call" % (
            label, inv[side]["p50_us"], inv[side]["p99_us"], inv[side]["cpu_us"]))
    d = inv["lambda_minus_v1"]
    out("  Lambda API minus /v1 (median of the rounds' differences): p50 %+.1f us, p99 %+.1f us,"
        " wispd cpu %+.1f us/call" % (d["p50_us"], d["p99_us"], d["cpu_us"]))
    c = figures["create_from_zip"]
    out("CreateFunction from a %.1f MB zip with node_modules, over %d samples:" % (
        c["package_bytes"] / 1e6, len(c["samples"])))
    out("  answered (Pending) median %.1f ms; Active median %.1f ms, max %.1f ms" % (
        c["answered_ms_median"], c["active_ms_median"], c["active_ms_max"]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--create-samples", type=int, default=5)
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    figures = run(os.path.join(build, "bin", "wispd"),
                  os.path.join(build, "bench", "wisp_load_client"),
                  args.rounds, args.requests, args.create_samples)
    print_figures(figures)


if __name__ == "__main__":
    main()
