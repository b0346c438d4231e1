#!/usr/bin/python3
"""What the metrics of issue 14 (recent windows, last-call times, the event and log feeds)
cost a warm invoke: two wispds, one of this build and one built from the commit before the
change (BEFORE_BIN), each with the same trivial Node function; warm invokes at concurrency 1
with bench's load client, in paired rounds that alternate the two so that the machine's drift
hits both alike.

    bench/metrics_overhead.py BEFORE_BIN [BUILD_DIR] [--rounds N] [--requests N]

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

import wisp_fixture  # noqa: E402

CODE = "exports.handler = async (event) => ({ n: event.n });"


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_round(client, wisp, fid, requests):
    cmd = [client, "--port", str(wisp.port), "--path", f"/v1/functions/{fid}/invoke",
           "--body", '{"event":{"n":1}}', "--expect", '"success"', "--connections", "1",
           "--warmup-requests", "200", "--requests", str(requests)]
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
    ap.add_argument("before", help="wispd built from the commit before the metrics change")
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=3000)
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    binaries = {"before": os.path.abspath(args.before),
                "metrics": os.path.join(build, "bin", "wispd")}
    client = os.path.join(build, "bench", "wisp_load_client")

    servers = {name: wisp_fixture.WispServer(binary=binary).start()
               for name, binary in binaries.items()}
    try:
        fids = {}
        for name, wisp in servers.items():
            fids[name] = wisp.create(name=f"metrics-bench-{name}", runtime="node", code=CODE)
            wisp.wait_state(fids[name])
        rows = {name: [] for name in servers}
        for i in range(args.rounds):
            order = list(servers) if i % 2 == 0 else list(reversed(list(servers)))
            for name in order:
                row = run_round(client, servers[name], fids[name], args.requests)
                rows[name].append(row)
                print(f"round {i + 1} {name:7}: p50 {row['p50']:7.1f} us  p99 "
                      f"{row['p99']:8.1f} us  wispd cpu {row['cpu_us']:5.1f} us/call", flush=True)
        for name in servers:
            med = {k: statistics.median(r[k] for r in rows[name]) for k in ("p50", "p99", "cpu_us")}
            print(f"median {name:7}: p50 {med['p50']:7.1f} us  p99 {med['p99']:8.1f} us  "
                  f"wispd cpu {med['cpu_us']:5.1f} us/call")
    finally:
        for wisp in servers.values():
            try:
                wisp.stop(check=False)
            finally:
                wisp.kill()
            wisp.cleanup()


if __name__ == "__main__":
    main()
