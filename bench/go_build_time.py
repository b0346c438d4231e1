#!/usr/bin/python3
"""Deploy-to-ready of a small Go function: the first build of a data directory (cold Go cache:
the standard library compiles too) and later builds (warm cache), medians over a few deploys.

    bench/go_build_time.py [--bin BUILD_DIR/bin/wispd] [--rounds N] [--warm N]

Each round starts a wispd on a fresh data directory (through tests/e2e/wisp_fixture.py),
deploys one Go function (cold) and then --warm more, one at a time, timing POST /v1/functions
until GET shows "ready" (polled every 10 ms). Prints every sample and the medians. Run it for
two binaries back to back to compare them; the machine's load moves the figures a lot.
"""

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "e2e"))

import wisp_fixture  # noqa: E402

SOURCE = """package main

import (
\t"encoding/json"
\t"fmt"
\t"os"
)

func main() {
\tvar event map[string]any
\tjson.Unmarshal([]byte(os.Getenv("FUNCTION_PAYLOAD")), &event)
\tout, _ := json.Marshal(map[string]any{"hello": event["name"], "n": %d})
\tfmt.Println(string(out))
}
"""


def deploy_seconds(server, name, n):
    started = time.monotonic()
    fid = server.create(name=name, runtime="go", code=SOURCE % n)
    while True:
        item = server.function(fid)
        if item["state"] == "ready":
            return time.monotonic() - started
        if item["state"] == "error":
            raise SystemExit(f"deploy of {name} failed: {item['error']}")
        time.sleep(0.01)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", help="wispd binary (default: WISP_BIN or build/bin/wispd)")
    parser.add_argument("--rounds", type=int, default=3, help="fresh data directories")
    parser.add_argument("--warm", type=int, default=3, help="warm-cache deploys per round")
    args = parser.parse_args()
    if args.bin:
        os.environ["WISP_BIN"] = os.path.abspath(args.bin)
    cold, warm = [], []
    for round_number in range(args.rounds):
        server = wisp_fixture.WispServer(env={"WISP_PREWARM_NODE_INSTANCES": "0",
                                              "WISP_PREWARM_PYTHON_INSTANCES": "0"})
        try:
            server.start()
            cold.append(deploy_seconds(server, f"go-cold-{round_number}", 0))
            for i in range(args.warm):
                warm.append(deploy_seconds(server, f"go-warm-{round_number}-{i}", i + 1))
            server.stop()
        finally:
            server.kill()
            server.cleanup()
        print(f"round {round_number + 1}: cold {cold[-1]:.2f} s, warm "
              + ", ".join(f"{s:.2f}" for s in warm[-args.warm:]) + " s", flush=True)
    print(f"{os.environ.get('WISP_BIN', 'build/bin/wispd')}: median cold {statistics.median(cold):.2f}"
          f" s (n={len(cold)}), median warm {statistics.median(warm):.2f} s (n={len(warm)})")


if __name__ == "__main__":
    main()
