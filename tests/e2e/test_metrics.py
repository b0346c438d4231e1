"""What runs, seen from outside, through a real wispd: /metrics parsed with the Prometheus
client's own text parser, a function's recent windows, the instances, the WebSockets (an
instance's usage, state changes) with a real WebSocket client, logs that follow as
Server-Sent Events; with authentication off and on."""

import json
import os
import socket
import threading
import time
import unittest

from wisp_fixture import WispTestCase

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # the test classes skip with the reason below
    text_string_to_metric_families = None
try:
    import websocket
except ImportError:
    websocket = None


def require_clients():
    if text_string_to_metric_families is None:
        raise unittest.SkipTest("python3-prometheus-client is not installed (scripts/install-deps)")
    if websocket is None:
        raise unittest.SkipTest("python3-websocket is not installed (scripts/install-deps)")


# A function whose event says what it does: fail, sleep, log.
NODE_CODE = """
exports.handler = async (event) => {
  if (event.log) console.log(event.log);
  if (event.ms) await new Promise(r => setTimeout(r, event.ms));
  if (event.fail) throw new Error('asked to fail');
  return {ok: true};
};
"""


def scrape(wisp):
    """/metrics as {(name, frozenset(labels)): value}, parsed by prometheus_client."""
    r = wisp.request("GET", "/metrics")
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4"), r.headers
    samples = {}
    families = {}
    for family in text_string_to_metric_families(r.body.decode()):
        families[family.name] = family
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, families


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def histogram(samples, name, **labels):
    """({le: cumulative count}, sum, count) of one histogram series."""
    buckets = {}
    for (sample_name, sample_labels), v in samples.items():
        d = dict(sample_labels)
        if sample_name == name + "_bucket" and {k: d.get(k) for k in labels} == labels:
            buckets[float(d["le"])] = v
    return (buckets, value(samples, name + "_sum", **labels),
            value(samples, name + "_count", **labels))


def ws_url(wisp, path):
    return f"ws://127.0.0.1:{wisp.port}{path}"


def ws_connect(wisp, path, timeout=15):
    headers = [f"{k}: {v}" for k, v in wisp.auth_headers.items()]
    return websocket.create_connection(ws_url(wisp, path), timeout=timeout, header=headers)


def recv_until(ws, predicate, timeout=20):
    """JSON messages until one satisfies `predicate`; all of them, in order."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ws.settimeout(max(0.1, deadline - time.monotonic()))
        message = json.loads(ws.recv())
        seen.append(message)
        if predicate(message):
            return seen
    raise AssertionError(f"no matching message; got {seen}")


class SseReader:
    """A real Server-Sent Events read over a socket: the head, then events dispatched at blank
    lines, with their `event`, `id` and `data` fields (comments kept apart)."""

    def __init__(self, port, path, headers=None, timeout=20):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream"
                          f"\r\n{extra}\r\n".encode())
        self.buffer = b""
        head = self._read_until(b"\r\n\r\n").decode()
        lines = head.split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.lower(): v.strip() for k, v in
                        (line.split(":", 1) for line in lines[1:] if ":" in line)}
        self.comments = []

    def _read_until(self, marker):
        while marker not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("stream closed")
            self.buffer += chunk
        at = self.buffer.index(marker) + len(marker)
        out, self.buffer = self.buffer[:at], self.buffer[at:]
        return out

    def next_event(self):
        """The next dispatched event as {"event", "id", "data"}; comments are collected."""
        while True:
            block = self._read_until(b"\n\n").decode()
            event = {"event": "message", "id": None, "data": []}
            for line in block.split("\n"):
                if not line:
                    continue
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                    continue
                field, _, val = line.partition(":")
                val = val[1:] if val.startswith(" ") else val
                if field == "data":
                    event["data"].append(val)
                elif field in ("event", "id"):
                    event[field] = val
            if event["data"]:
                event["data"] = "\n".join(event["data"])
                return event

    def wait_comment(self, prefix):
        while not any(c.startswith(prefix) for c in self.comments):
            block = self._read_until(b"\n\n").decode()
            for line in block.split("\n"):
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())

    def close(self):
        self.sock.close()


class PrometheusTest(WispTestCase):
    """Counters and histograms in /metrics move by exactly what the calls did."""

    server_env = {"WISP_QUEUE_WAIT_SECONDS": "0.5"}

    @classmethod
    def setUpClass(cls):
        require_clients()
        super().setUpClass()

    def test_calls_move_counters_and_histograms_exactly(self):
        name = self.unique_name("prom")
        fid = self.deploy(NODE_CODE, name=name, timeout_seconds=1)
        before, families = scrape(self.wisp)
        # (The parser names a counter's family without its _total suffix.)
        for family in ("wisp_function_invocations", "wisp_function_duration_seconds",
                       "wisp_function_init_duration_seconds", "wisp_function_queue_wait_seconds",
                       "wisp_function_cold_starts", "wisp_function_instances",
                       "wisp_function_concurrent_executions", "wisp_async_queue_depth",
                       "wisp_async_dead_letters", "wisp_process_resident_memory_bytes",
                       "wisp_process_open_fds", "wisp_process_cpu_seconds",
                       "wisp_process_start_time_seconds"):
            self.assertIn(family, families)
        self.assertEqual(families["wisp_function_duration_seconds"].type, "histogram")
        self.assertEqual(families["wisp_function_invocations"].type, "counter")
        self.assertEqual(families["wisp_function_instances"].type, "gauge")

        outcomes = []
        runtimes = []  # each call's runtime (what the histogram records), from Server-Timing
        for event in ({}, {}, {"fail": True}, {"ms": 3000}):
            r = self.wisp.invoke(fid, event)
            self.assertEqual(r.status, 200, r)
            outcomes.append(r.json)
            timing = dict(part.strip().split(";dur=") for part in
                          r.headers["server-timing"].split(","))
            runtimes.append(float(timing["runtime"]) / 1000.0)
        self.assertEqual([o["status"] for o in outcomes], ["success", "success", "error",
                                                           "timeout"])
        after, _ = scrape(self.wisp)

        def delta(metric, **labels):
            return value(after, metric, **labels) - value(before, metric, **labels)

        total = "wisp_function_invocations_total"
        self.assertEqual(delta(total, function=name, outcome="success"), 2)
        self.assertEqual(delta(total, function=name, outcome="error"), 1)
        self.assertEqual(delta(total, function=name, outcome="timeout"), 1)
        self.assertEqual(delta(total, function=name, outcome="throttled"), 0)
        self.assertEqual(delta("wisp_invocations_total", outcome="success"), 2)

        b0, sum0, count0 = histogram(before, "wisp_function_duration_seconds", function=name)
        b1, sum1, count1 = histogram(after, "wisp_function_duration_seconds", function=name)
        self.assertEqual(count1 - count0, 4)
        self.assertEqual(b1[float("inf")], count1)
        # The timed-out call ran about a second, the others far less.
        self.assertGreaterEqual(sum1 - sum0, 0.9)
        self.assertEqual(b1[0.5] - b0.get(0.5, 0), 3)
        self.assertEqual(b1[2.5] - b0.get(2.5, 0), 4)
        bounds = sorted(b1)
        for lower, upper in zip(bounds, bounds[1:]):
            self.assertLessEqual(b1[lower], b1[upper], "buckets are cumulative")
        # Each call is counted at the first bound that holds its duration (the header rounds
        # to a microsecond: a bound that close could go either way).
        for runtime in runtimes:
            first = min(le for le in bounds if le >= runtime + 2e-6)
            below = [le for le in bounds if le < runtime - 2e-6]
            self.assertGreaterEqual(b1[first] - b0.get(first, 0), 1, runtime)
            if below:
                self.assertLess(b1[below[-1]] - b0.get(below[-1], 0), 4, runtime)

        wait0 = histogram(before, "wisp_function_queue_wait_seconds", function=name)[2]
        wait1 = histogram(after, "wisp_function_queue_wait_seconds", function=name)[2]
        self.assertEqual(wait1 - wait0, 4)
        # The timeout killed the instance: the next call starts one (a cold start, with its
        # init duration).
        cold0 = value(after, "wisp_function_cold_starts_total", function=name)
        init0 = histogram(after, "wisp_function_init_duration_seconds", function=name)[2]
        r = self.wisp.invoke(fid, {})
        self.assertEqual(r.status, 200, r)
        latest, _ = scrape(self.wisp)
        cold = 1 if r.json["init_duration_ms"] is not None else 0
        self.assertEqual(value(latest, "wisp_function_cold_starts_total", function=name) - cold0,
                         cold)
        self.assertEqual(histogram(latest, "wisp_function_init_duration_seconds",
                                   function=name)[2] - init0, cold)
        self.assertEqual(value(latest, "wisp_function_instances", function=name,
                               version="1", state="idle"), 1)
        self.assertEqual(value(latest, "wisp_function_concurrent_executions", function=name), 0)

    def test_throttled_and_cold_starts_count_what_callers_saw(self):
        name = self.unique_name("throttle")
        fid = self.deploy(NODE_CODE, name=name, max_concurrency=1)
        before, _ = scrape(self.wisp)
        # Two calls of 1.5 s on a function limited to one instance, with a 0.5 s queue wait:
        # one runs, one is refused.
        results = self.wisp.invoke_concurrently(fid, [{"ms": 1500}] * 2, timeout=30)
        statuses = sorted(r.status for r in results)
        self.assertEqual(statuses, [200, 429], results)
        after, _ = scrape(self.wisp)
        self.assertEqual(value(after, "wisp_function_invocations_total", function=name,
                               outcome="throttled") -
                         value(before, "wisp_function_invocations_total", function=name,
                               outcome="throttled"), 1)
        self.assertEqual(value(after, "wisp_function_invocations_total", function=name,
                               outcome="success") -
                         value(before, "wisp_function_invocations_total", function=name,
                               outcome="success"), 1)

    def test_a_deleted_function_leaves_the_series_and_stays_in_node_totals(self):
        name = self.unique_name("gone")
        fid = self.deploy(NODE_CODE, name=name)
        self.assertEqual(self.wisp.invoke(fid, {}).status, 200)
        before, _ = scrape(self.wisp)
        self.assertEqual(value(before, "wisp_function_invocations_total", function=name,
                               outcome="success"), 1)
        self.assertEqual(self.wisp.request("DELETE", f"/v1/functions/{fid}").status, 200)
        after, _ = scrape(self.wisp)
        self.assertNotIn(("wisp_function_invocations_total",
                          frozenset({"function": name, "outcome": "success"}.items())), after)
        self.assertEqual(value(after, "wisp_invocations_total", outcome="success"),
                         value(before, "wisp_invocations_total", outcome="success"))


class FunctionMetricsAndInstancesTest(WispTestCase):
    """The JSON windows and the instances API."""

    @classmethod
    def setUpClass(cls):
        require_clients()
        super().setUpClass()

    def test_recent_window_counts_rates_and_quantiles(self):
        fid = self.deploy(NODE_CODE)
        for event in ({}, {}, {}, {"fail": True}):
            self.assertEqual(self.wisp.invoke(fid, event).status, 200)
        r = self.wisp.request("GET", f"/v1/functions/{fid}/metrics?window=5m")
        self.assertEqual(r.status, 200, r)
        m = r.json
        self.assertEqual(m["function_id"], fid)
        self.assertEqual(m["resolution"], "1m")
        self.assertEqual(len(m["series"]), 5)
        self.assertEqual(m["invocations"], 4)
        self.assertEqual(m["success"], 3)
        self.assertEqual(m["error"], 1)
        self.assertAlmostEqual(m["error_rate"], 0.25)
        self.assertEqual(sum(p["invocations"] for p in m["series"]), 4)
        d = m["duration_ms"]
        self.assertGreater(d["p50"], 0)
        self.assertLessEqual(d["p50"], d["p95"])
        self.assertLessEqual(d["p95"], d["p99"])
        self.assertEqual(m["since_start"]["invocations"], 4)

        day = self.wisp.request("GET", f"/v1/functions/{fid}/metrics?window=24h").json
        self.assertEqual(day["resolution"], "1h")
        self.assertEqual(len(day["series"]), 24)
        self.assertEqual(day["invocations"], 4)
        self.assertEqual(self.wisp.request("GET", f"/v1/functions/{fid}/metrics").json["window"],
                         "1h")
        for bad in ("0m", "61m", "25h", "5x", "h", "-1m"):
            self.assertEqual(
                self.wisp.request("GET", f"/v1/functions/{fid}/metrics?window={bad}").status,
                400, bad)
        self.assertEqual(self.wisp.request("GET", "/v1/functions/nope/metrics").status, 404)

    def test_instances_show_calls_memory_and_cpu(self):
        fid = self.deploy(NODE_CODE)
        for _ in range(3):
            self.assertEqual(self.wisp.invoke(fid, {}).status, 200)
        r = self.wisp.request("GET", f"/v1/functions/{fid}/instances")
        self.assertEqual(r.status, 200, r)
        items = r.json["items"]
        self.assertEqual(len(items), 1, items)
        inst = items[0]
        self.assertEqual(inst["function_id"], fid)
        self.assertEqual(inst["version"], 1)
        self.assertEqual(inst["state"], "idle")
        self.assertGreaterEqual(inst["calls_served"], 3)
        self.assertIsNotNone(inst["last_call_at"])
        self.assertIsNotNone(inst["started_at"])
        self.assertGreater(inst["cpu_seconds"], 0)
        if os.path.isdir("/sys/fs/cgroup/memory") or os.path.exists(
                "/sys/fs/cgroup/cgroup.controllers"):
            self.assertGreater(inst["memory_bytes"], 1 << 20)
            self.assertGreaterEqual(inst["memory_peak_bytes"], inst["memory_bytes"])
        everything = self.wisp.request("GET", "/v1/instances").json["items"]
        self.assertIn(inst["id"], [i["id"] for i in everything])
        self.assertEqual(self.wisp.request("GET", "/v1/functions/nope/instances").status, 404)
        self.wisp.record_instances(fid)

    def test_instance_metrics_websocket_and_its_seed_alias(self):
        fid = self.deploy(NODE_CODE)
        self.assertEqual(self.wisp.invoke(fid, {}).status, 200)
        inst = self.wisp.request("GET", f"/v1/functions/{fid}/instances").json["items"][0]
        for path in (f"/v1/instances/{inst['id']}/metrics/ws", f"/v1/vms/{inst['id']}/metrics/ws"):
            with self.subTest(path=path):
                ws = ws_connect(self.wisp, path)
                try:
                    first = json.loads(ws.recv())
                    second = json.loads(ws.recv())
                finally:
                    ws.close()
                for m in (first, second):
                    self.assertEqual(m["type"], "metrics")
                    self.assertEqual(m["instance_id"], inst["id"])
                    self.assertEqual(m["vm_id"], inst["id"])
                    self.assertEqual(m["function_id"], fid)
                    self.assertGreater(m["cpu_seconds"], 0)
                    self.assertIn("memory_bytes", m)
                self.assertIsNone(first["cpu_usage_percent"])  # no earlier reading yet
                self.assertGreaterEqual(second["cpu_usage_percent"], 0)
        with self.assertRaises(websocket.WebSocketBadStatusException) as refused:
            ws_connect(self.wisp, "/v1/instances/nope/metrics/ws")
        self.assertEqual(refused.exception.status_code, 404)
        # A plain GET of a WebSocket resource is told to upgrade.
        self.assertEqual(self.wisp.request("GET", "/v1/events/ws").status, 426)
        self.wisp.record_instances(fid)

    def test_logs_follow_streams_new_records_as_server_sent_events(self):
        fid = self.deploy(NODE_CODE)
        stream = SseReader(self.wisp.port, f"/v1/functions/{fid}/logs?follow=true")
        try:
            self.assertEqual(stream.status, 200)
            self.assertTrue(stream.headers["content-type"].startswith("text/event-stream"))
            stream.wait_comment("following")
            for n in range(2):
                self.assertEqual(self.wisp.invoke(fid, {"log": f"line-{n}"}).status, 200)
                event = stream.next_event()
                self.assertEqual(event["event"], "invocation")
                record = json.loads(event["data"])
                self.assertEqual(event["id"], record["id"])
                self.assertEqual(record["function_id"], fid)
                self.assertEqual(record["status"], "success")
                self.assertTrue(any(f"line-{n}" in line for line in record["logs"]), record)
        finally:
            stream.close()
        # Without follow, the listing is as before.
        listed = self.wisp.request("GET", f"/v1/functions/{fid}/logs").json["items"]
        self.assertEqual(len(listed), 2)
        # With a limit, the newest records come first, oldest first, then the new ones.
        stream = SseReader(self.wisp.port, f"/v1/functions/{fid}/logs?follow=true&limit=5")
        try:
            past = [json.loads(stream.next_event()["data"]) for _ in range(2)]
            self.assertEqual([r["id"] for r in past], [r["id"] for r in reversed(listed)])
            self.assertEqual(self.wisp.invoke(fid, {"log": "line-2"}).status, 200)
            record = json.loads(stream.next_event()["data"])
            self.assertTrue(any("line-2" in line for line in record["logs"]), record)
            self.assertNotIn(record["id"], [r["id"] for r in past])
        finally:
            stream.close()
        self.assertEqual(
            self.wisp.request("GET", f"/v1/functions/{fid}/logs?follow=maybe").status, 400)


class EventsTest(WispTestCase):
    """State changes arrive over /v1/events/ws: a function's life, its instances' and their
    reaping (a short keep-alive)."""

    server_env = {"WISP_IDLE_INSTANCE_KEEPALIVE_SECONDS": "1"}

    @classmethod
    def setUpClass(cls):
        require_clients()
        super().setUpClass()

    def test_function_and_instance_state_changes(self):
        ws = ws_connect(self.wisp, "/v1/events/ws", timeout=30)
        try:
            self.assertEqual(json.loads(ws.recv())["type"], "subscribed")
            name = self.unique_name("events")
            fid = self.wisp.create(name=name, runtime="node", code=NODE_CODE)
            seen = recv_until(ws, lambda m: m["type"] == "function.ready" and
                              m.get("function_id") == fid)
            types = [m["type"] for m in seen if m.get("function_id") == fid]
            for expected in ("function.created", "function.deploying", "instance.started",
                             "instance.ready", "function.scaled", "function.ready"):
                self.assertIn(expected, types)
            self.assertLess(types.index("function.created"), types.index("function.ready"))
            ready = seen[-1]
            self.assertEqual(ready["function_name"], name)
            self.assertEqual(ready["state"], "ready")
            self.assertEqual(ready["version"], 1)
            scaled = [m for m in seen if m["type"] == "function.scaled" and
                      m.get("function_id") == fid]
            self.assertEqual(scaled[-1]["instances"], 1)

            # Idle past the keep-alive: reaped, stopped, scaled to zero.
            seen = recv_until(ws, lambda m: m["type"] == "function.scaled" and
                              m.get("function_id") == fid and m["instances"] == 0)
            types = [m["type"] for m in seen if m.get("function_id") == fid]
            self.assertIn("instance.reaped", types)
            self.assertIn("instance.stopped", types)

            # A failed deploy and a delete.
            bad = self.wisp.create(name=self.unique_name("bad"), runtime="node",
                                   code="this is not javascript(")
            seen = recv_until(ws, lambda m: m["type"] == "function.error" and
                              m.get("function_id") == bad)
            self.assertTrue(seen[-1]["detail"])
            self.assertEqual(self.wisp.request("DELETE", f"/v1/functions/{fid}").status, 200)
            recv_until(ws, lambda m: m["type"] == "function.deleted" and
                       m.get("function_id") == fid)
        finally:
            ws.close()

    def test_events_of_one_function(self):
        first = self.wisp.create(name=self.unique_name("one"), runtime="node", code=NODE_CODE)
        self.wisp.wait_state(first)
        ws = ws_connect(self.wisp, f"/v1/events/ws?function={first}", timeout=30)
        try:
            self.assertEqual(json.loads(ws.recv())["type"], "subscribed")
            other = self.wisp.create(name=self.unique_name("other"), runtime="node",
                                     code=NODE_CODE)
            self.wisp.wait_state(other)
            self.assertEqual(self.wisp.request("DELETE", f"/v1/functions/{first}").status, 200)
            seen = recv_until(ws, lambda m: m["type"] == "function.deleted")
            self.assertTrue(all(m.get("function_id") == first for m in seen), seen)
        finally:
            ws.close()


class StopWithOpenStreamsTest(unittest.TestCase):
    """A graceful stop ends open streams instead of waiting for their clients."""

    def test_sigterm_closes_streams_and_exits_cleanly(self):
        require_clients()
        from wisp_fixture import WispServer
        wisp = WispServer()
        wisp.start()
        try:
            fid = wisp.create(name="streams", runtime="node", code=NODE_CODE)
            wisp.wait_state(fid)
            events = ws_connect(wisp, "/v1/events/ws", timeout=30)
            self.assertEqual(json.loads(events.recv())["type"], "subscribed")
            logs = SseReader(wisp.port, f"/v1/functions/{fid}/logs?follow=true", timeout=30)
            logs.wait_comment("following")
            wisp.record_instances(fid)
            wisp.stop()  # asserts exit code 0 and no sandbox left
            with self.assertRaises((websocket.WebSocketConnectionClosedException,
                                    ConnectionError)):
                while True:
                    events.recv()
            with self.assertRaises((EOFError, ConnectionError)):
                while True:
                    logs.next_event()
            events.close()
            logs.close()
        finally:
            wisp.kill()
            wisp.cleanup()


class AuthOnTest(unittest.TestCase):
    """With auth required, /metrics, the WebSockets and the log stream take a bearer key."""

    @classmethod
    def setUpClass(cls):
        require_clients()
        from auth_support import AuthServer
        cls.server = AuthServer().start()
        cls.wisp = cls.server.wisp

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_bearer_is_required_and_enough(self):
        anonymous = self.wisp.client()
        anonymous.default_headers = {}
        self.assertEqual(anonymous.request("GET", "/metrics").status, 401)
        anonymous.close()
        samples, _ = scrape(self.wisp)
        self.assertIn(("wisp_async_dead_letters", frozenset()), samples)

        fid = self.wisp.create(name="authed", runtime="node", code=NODE_CODE)
        self.wisp.wait_state(fid)
        self.assertEqual(self.wisp.invoke(fid, {}).status, 200)
        inst = self.wisp.request("GET", f"/v1/functions/{fid}/instances").json["items"][0]

        for path in ("/v1/events/ws", f"/v1/instances/{inst['id']}/metrics/ws"):
            with self.subTest(path=path):
                with self.assertRaises(websocket.WebSocketBadStatusException) as refused:
                    websocket.create_connection(ws_url(self.wisp, path), timeout=10)
                self.assertEqual(refused.exception.status_code, 401)
                with self.assertRaises(websocket.WebSocketBadStatusException) as wrong:
                    websocket.create_connection(ws_url(self.wisp, path), timeout=10,
                                                header=["Authorization: Bearer wrong"])
                self.assertEqual(wrong.exception.status_code, 401)
                ws = ws_connect(self.wisp, path)
                try:
                    self.assertIn(json.loads(ws.recv())["type"], ("subscribed", "metrics"))
                finally:
                    ws.close()

        # A browser's way: the key offered as a subprotocol beside "wisp", which wispd picks.
        secret = self.server.CONFIG_KEY_SECRET
        ws = websocket.create_connection(ws_url(self.wisp, "/v1/events/ws"), timeout=10,
                                         subprotocols=["wisp", f"wisp.bearer.{secret}"])
        try:
            self.assertEqual(ws.getsubprotocol(), "wisp")
            self.assertEqual(json.loads(ws.recv())["type"], "subscribed")
        finally:
            ws.close()
        with self.assertRaises(websocket.WebSocketBadStatusException) as wrong:
            websocket.create_connection(ws_url(self.wisp, "/v1/events/ws"), timeout=10,
                                        subprotocols=["wisp", "wisp.bearer.not-a-key"])
        self.assertEqual(wrong.exception.status_code, 401)

        refused = SseReader(self.wisp.port, f"/v1/functions/{fid}/logs?follow=true")
        self.assertEqual(refused.status, 401)
        refused.close()
        stream = SseReader(self.wisp.port, f"/v1/functions/{fid}/logs?follow=true",
                           headers=self.wisp.auth_headers)
        try:
            self.assertEqual(stream.status, 200)
            stream.wait_comment("following")
            self.assertEqual(self.wisp.invoke(fid, {"log": "authed-line"}).status, 200)
            record = json.loads(stream.next_event()["data"])
            self.assertTrue(any("authed-line" in line for line in record["logs"]))
        finally:
            stream.close()
        self.wisp.record_instances(fid)


if __name__ == "__main__":
    unittest.main()
