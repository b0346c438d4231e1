"""Issue 10, finding 1: a function floods its own Runtime API endpoint (AWS_LAMBDA_RUNTIME_API,
served by wispd outside the function's cgroup) with connections, huge result uploads for an id
that is not in flight, a slow upload for its own id, and idle connections. wispd must not grow
with it: its RSS and open fds stay within a stated bound, /health keeps answering, and an
innocent function keeps its latency.

Bounds (the hostile instances are HOSTILE_INSTANCES; each endpoint holds at most a few TCP
connections and one result's worth of body, ~6.1 MB):
  - wispd's RSS grows by at most RSS_GROWTH_MB over the flood (before the fix: hundreds of MB,
    every accepted connection buffering its body);
  - wispd's open fds grow by at most FD_GROWTH (before the fix: one per connection, thousands);
  - the innocent function's p99 during the flood is at most max(2 x its idle p99, idle p99 +
    100 ms): 2x as the issue asks, with a floor for this noisy 2-core VM where one scheduling
    hiccup is tens of ms.
"""

import os
import threading
import time
import unittest

import sandbox_fixture as sf
from sandbox_fixture import SecurityTestCase

HOSTILE_INSTANCES = 3
CONNECTIONS = 900          # per instance; the sandbox's RLIMIT_NOFILE is 1,024
BODY_BYTES = 512 << 10     # sent after each flooding request's header
HOLD_SECONDS = 8
RSS_GROWTH_MB = 64
FD_GROWTH = 100

FLOOD = r'''
import os, socket, time

HEAD = (b"POST /2018-06-01/runtime/invocation/x/response HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 6000000\r\n\r\n")

def handler(event, context):
    host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)
    addr = (host, int(port))
    payload = memoryview(HEAD + b"y" * event["body_bytes"])
    # Its own request id too: a result upload that starts and never finishes.
    own = (b"POST /2018-06-01/runtime/invocation/" + context.aws_request_id.encode() +
           b"/response HTTP/1.1\r\nHost: x\r\nContent-Length: 6000000\r\n\r\n[")
    socks, offsets = [], []
    for i in range(event["connections"]):
        try:
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(addr)
        except OSError:
            break
        socks.append(s)
        offsets.append(0)
    sent = refused = 0
    deadline = time.monotonic() + event["hold_seconds"]
    own_sock = None
    while time.monotonic() < deadline:
        if own_sock is None:
            try:
                own_sock = socket.create_connection(addr, timeout=0.2)
                own_sock.sendall(own)
            except OSError:
                own_sock = None
        for i, s in enumerate(socks):
            if i % 2 or offsets[i] >= len(payload):  # odd ones stay idle
                continue
            try:
                n = s.send(payload[offsets[i]:offsets[i] + 65536])
                offsets[i] += n
                sent += n
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                offsets[i] = len(payload)
                refused += 1
        time.sleep(0.02)
    return {"opened": len(socks), "sent": sent, "refused": refused}
'''


def tearDownModule():
    sf.stop_server()


def rss_kb(pid):
    return int(sf.proc_status(f"/proc/{pid}")["VmRSS"].split()[0])


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def p99(samples):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


class RuntimeApiFloodTest(SecurityTestCase):

    def innocent_latencies(self, client, seconds=None, calls=None, stop=None):
        latencies = []
        end = time.monotonic() + (seconds or 1e9)
        n = 0
        while time.monotonic() < end and (calls is None or n < calls) and not (
                stop and stop.is_set()):
            n += 1
            t0 = time.monotonic()
            r = self.wisp.invoke(self.innocent, {"n": n}, client=client)
            latencies.append(time.monotonic() - t0)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["response"], {"echo": n}, r)
            time.sleep(0.02)
        return latencies

    def test_flooding_the_runtime_api_does_not_grow_wispd(self):
        pid = self.wisp.proc.pid
        fid = self.deploy(FLOOD, timeout_seconds=60)
        client = self.wisp.client(timeout=30)
        self.addCleanup(client.close)
        idle = self.innocent_latencies(client, calls=40)
        idle_p99 = p99(idle)
        rss_before, fds_before = rss_kb(pid), fd_count(pid)

        event = {"connections": CONNECTIONS, "body_bytes": BODY_BYTES,
                 "hold_seconds": HOLD_SECONDS}
        results = [None] * HOSTILE_INSTANCES

        def hostile(i):
            c = self.wisp.client(timeout=120)
            try:
                results[i] = self.wisp.invoke(fid, event, client=c)
            except Exception as e:  # noqa: BLE001 (reported below)
                results[i] = e
            finally:
                c.close()

        threads = [threading.Thread(target=hostile, args=(i,)) for i in range(HOSTILE_INSTANCES)]
        for t in threads:
            t.start()
        peak = {"rss": rss_before, "fds": fds_before}
        health_failures = []
        done = threading.Event()

        def watch():
            probe = self.wisp.client(timeout=5)
            try:
                while not done.is_set():
                    try:
                        peak["rss"] = max(peak["rss"], rss_kb(pid))
                        peak["fds"] = max(peak["fds"], fd_count(pid))
                    except (OSError, TypeError):
                        pass
                    try:
                        r = probe.request("GET", "/health")
                        if r.status != 200:
                            health_failures.append(r)
                    except Exception as e:  # noqa: BLE001
                        health_failures.append(e)
                    time.sleep(0.1)
            finally:
                probe.close()

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            time.sleep(1)  # the flood is under way
            during = self.innocent_latencies(client, seconds=HOLD_SECONDS - 2)
        finally:
            for t in threads:
                t.join(timeout=150)
            done.set()
            watcher.join()

        for r in results:
            self.assertNotIsInstance(r, Exception, r)
            self.assertEqual(r.status, 200, r)
        flood = [r.json for r in results]
        growth_mb = (peak["rss"] - rss_before) / 1024
        print(f"\nflood: {flood}\nwispd RSS {rss_before // 1024} MB -> peak +{growth_mb:.1f} MB; "
              f"fds {fds_before} -> peak {peak['fds']}; innocent p99 idle "
              f"{idle_p99 * 1000:.1f} ms, during {p99(during) * 1000:.1f} ms "
              f"({len(during)} calls)")
        self.assertEqual(health_failures, [], "/health failed during the flood")
        self.assertLessEqual(growth_mb, RSS_GROWTH_MB, "wispd's RSS grew with the flood")
        self.assertLessEqual(peak["fds"] - fds_before, FD_GROWTH,
                             "wispd's open fds grew with the flood")
        bound = max(2 * idle_p99, idle_p99 + 0.1)
        self.assertLessEqual(p99(during), bound,
                             f"innocent p99 {p99(during):.3f}s over {bound:.3f}s: {during}")
        self.assert_host_clean()


if __name__ == "__main__":
    unittest.main()
