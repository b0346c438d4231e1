#!/usr/bin/python3
"""What authentication costs a warm invoke: two wispds of one build, one with auth off (the
default on loopback) and one with auth required, each with the same trivial Node function;
warm invokes at concurrency 1 with bench's load client (the second sends its bearer key), in
paired rounds that alternate the two so that the machine's drift hits both alike.

    bench/auth_overhead.py [BUILD_DIR] [--rounds N] [--requests N]

Prints per round and as medians: client latency p50/p99 and wispd's CPU per call (utime +
stime of the daemon over the round / calls). A benchmark, not a test: it fails only when calls
fail."""

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "e2e"))

import auth_support  # noqa: E402
import wisp_fixture  # noqa: E402

CODE = "exports.handler = async (event) => ({ n: event.n });"


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_round(client, wisp, fid, requests, secret):
    cmd = [client, "--port", str(wisp.port), "--path", f"/v1/functions/{fid}/invoke",
           "--body", '{"event":{"n":1}}', "--expect", '"success"', "--connections", "1",
           "--warmup-requests", "200", "--requests", str(requests)]
    if secret:
        cmd += ["--header", f"Authorization: Bearer {secret}"]
    before = cpu_seconds(wisp.proc.pid)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    after = cpu_seconds(wisp.proc.pid)
    if out.returncode != 0:
        raise SystemExit(f"load client failed: {out.stderr}")
    result = json.loads(out.stdout)
    if result["ok"] != result["requests"] or result["warmup_failures"]:
        raise SystemExit(f"calls failed: {result}")
    calls = result["requests"] + result["warmup_requests"]
    return {"p50": result["latency_us"]["p50"], "p99": result["latency_us"]["p99"],
            "cpu_us": (after - before) / calls * 1e6}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=3000)
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    binary = os.path.join(build, "bin", "wispd")
    client = os.path.join(build, "bench", "wisp_load_client")
    os.environ["WISP_BIN"] = binary

    off = wisp_fixture.WispServer(binary=binary).start()
    on_server = auth_support.AuthServer()
    on = on_server.start().wisp
    try:
        fids = {}
        for name, wisp in (("off", off), ("on", on)):
            fids[name] = wisp.create(name=f"auth-bench-{name}", runtime="node", code=CODE)
            wisp.wait_state(fids[name])
        rows = {"off": [], "on": []}
        for i in range(args.rounds):
            for name, wisp, secret in (("off", off, None),
                                       ("on", on, auth_support.AuthServer.CONFIG_KEY_SECRET)):
                row = run_round(client, wisp, fids[name], args.requests, secret)
                rows[name].append(row)
                print(f"round {i + 1} auth {name:3}: p50 {row['p50']:7.1f} us  p99 "
                      f"{row['p99']:8.1f} us  wispd cpu {row['cpu_us']:5.1f} us/call", flush=True)
        for name in ("off", "on"):
            med = {k: statistics.median(r[k] for r in rows[name]) for k in ("p50", "p99", "cpu_us")}
            print(f"median auth {name:3}: p50 {med['p50']:7.1f} us  p99 {med['p99']:8.1f} us  "
                  f"wispd cpu {med['cpu_us']:5.1f} us/call")
    finally:
        for wisp in (off, on):
            try:
                wisp.stop(check=False)
            finally:
                wisp.kill()
        off.cleanup()
        on_server.stop()


if __name__ == "__main__":
    main()
