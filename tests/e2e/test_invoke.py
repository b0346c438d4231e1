"""Invocations through a real wispd: handler forms, context, env, logs, errors, timeouts,
crashes, out-of-memory kills and deploy failures, for Node and Python."""

import time
import unittest

from wisp_fixture import WispTestCase


class HandlerFormsTest(WispTestCase):

    NODE_FORMS = {
        "bare async": ("async function handler(event) { return {form: 'bare', x: event.x}; }",
                       "handler"),
        "export async": ("export async function handler(event, context) {"
                         " return {form: 'export', x: event.x}; }", "handler"),
        "exports.handler": ("exports.handler = async (event) => ({form: 'exports', x: event.x});",
                            "handler"),
        "module.exports.handler": ("module.exports.handler = async function (event) {"
                                   " return {form: 'module', x: event.x}; };", "handler"),
        "sync": ("function handler(event) { return {form: 'sync', x: event.x}; }", "handler"),
        "callback": ("function handler(event, context, callback) {"
                     " setTimeout(() => callback(null, {form: 'callback', x: event.x}), 10); }",
                     "handler"),
        "index.main": ("async function helper() { return 'no'; }\n"
                       "async function main(event) { return {form: 'main', x: event.x}; }",
                       "index.main"),
        "promise": ("exports.handler = (event) => new Promise(r => setTimeout(() =>"
                    " r({form: 'promise', x: event.x}), 10));", "handler"),
    }

    def test_node_handler_forms(self):
        for label, (code, handler) in self.NODE_FORMS.items():
            with self.subTest(form=label):
                fid = self.deploy(code, handler=handler)
                r = self.invoke_ok(fid, {"x": 7})
                self.assertEqual(r["response"]["x"], 7, r)
                # Warm call on the same instance works too.
                self.assertEqual(self.invoke_ok(fid, {"x": 8})["response"]["x"], 8)

    def test_node_callback_error(self):
        fid = self.deploy("function handler(event, context, callback) {"
                          " callback(new Error('cb failed')); }")
        r = self.wisp.invoke(fid)
        self.assertEqual(r.json["status"], "error", r)
        self.assertIn("cb failed", r.json["response"]["errorMessage"])

    def test_python_handler_forms(self):
        forms = {
            "event only": "def handler(event):\n    return {'x': event['x']}\n",
            "event, context": "def handler(event, context):\n    return {'x': event['x']}\n",
            "imports": "import json, math\n\ndef handler(event, context):\n"
                       "    return json.loads(json.dumps({'x': event['x']}))\n",
        }
        for label, code in forms.items():
            with self.subTest(form=label):
                fid = self.deploy(code, runtime="python")
                self.assertEqual(self.invoke_ok(fid, {"x": 3})["response"], {"x": 3})
        fid = self.deploy("def other(event):\n    return 'other'\n", runtime="python",
                          handler="other")
        self.assertEqual(self.invoke_ok(fid)["response"], "other")
        fid = self.deploy("def main(event, context):\n    return 'main'\n", runtime="python",
                          handler="lambda_function.main")
        self.assertEqual(self.invoke_ok(fid)["response"], "main")

    def test_node_context(self):
        fid = self.deploy(
            "exports.handler = async (event, context) => ({"
            " name: context.functionName, rid: context.awsRequestId,"
            " remaining: context.getRemainingTimeInMillis(),"
            " memory: String(context.memoryLimitInMB) });",
            timeout_seconds=3, memory_mb=192)
        name = self.wisp.function(fid)["name"]
        r = self.invoke_ok(fid)
        resp = r["response"]
        self.assertEqual(resp["name"], name)
        self.assertEqual(resp["rid"], r["request_id"])
        self.assertGreater(resp["remaining"], 0)
        self.assertLessEqual(resp["remaining"], 3000)
        self.assertEqual(resp["memory"], "192")

    def test_python_context(self):
        fid = self.deploy(
            "def handler(event, context):\n"
            "    return {'name': context.function_name, 'rid': context.aws_request_id,\n"
            "            'remaining': context.get_remaining_time_in_millis()}\n",
            runtime="python", timeout_seconds=4)
        name = self.wisp.function(fid)["name"]
        r = self.invoke_ok(fid)
        self.assertEqual(r["response"]["name"], name)
        self.assertEqual(r["response"]["rid"], r["request_id"])
        self.assertGreater(r["response"]["remaining"], 0)
        self.assertLessEqual(r["response"]["remaining"], 4000)

    def test_env_vars(self):
        env = {"GREETING": "hello", "EMPTY": "", "UNICODE": "\u00e9\u2603", "SPACES": "a b  c"}
        fid = self.deploy("exports.handler = async () => ({g: process.env.GREETING,"
                          " e: process.env.EMPTY, u: process.env.UNICODE,"
                          " s: process.env.SPACES});", env=env)
        self.assertEqual(self.invoke_ok(fid)["response"],
                         {"g": "hello", "e": "", "u": "\u00e9\u2603", "s": "a b  c"})
        fid = self.deploy("import os\ndef handler(event):\n"
                          "    return {'g': os.environ.get('GREETING'),"
                          " 'u': os.environ.get('UNICODE')}\n", runtime="python", env=env)
        self.assertEqual(self.invoke_ok(fid)["response"], {"g": "hello", "u": "\u00e9\u2603"})

    def test_trace_id_only_from_the_caller(self):
        # The caller's X-Amzn-Trace-Id reaches the function as _X_AMZN_TRACE_ID for that call
        # only; a call without one sees none (Wisp makes up none: see InvokeOptions).
        trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
        path = None
        for runtime, code in (
                ("node", "exports.handler = async () => process.env._X_AMZN_TRACE_ID ?? null;"),
                ("python", "import os\ndef handler(event):\n"
                           "    return os.environ.get('_X_AMZN_TRACE_ID')\n")):
            fid = self.deploy(code, runtime=runtime)
            path = f"/v1/functions/{fid}/invoke"
            traced = self.wisp.request("POST", path, body={"event": {}},
                                  headers={"X-Amzn-Trace-Id": trace})
            self.assertEqual(traced.json["response"], trace, runtime)
            self.assertIsNone(self.invoke_ok(fid)["response"], runtime)
        bad = self.wisp.request("POST", path, body={"event": {}},
                           headers={"X-Amzn-Trace-Id": "x" * 300})
        self.assertEqual(bad.status, 200)
        self.assertIsNone(bad.json["response"], "an over-long trace id is not passed on")

    def test_request_ids_unique(self):
        fid = self.deploy("exports.handler = async (e, c) => c.awsRequestId;")
        ids = set()
        for _ in range(10):
            r = self.invoke_ok(fid)
            self.assertEqual(r["response"], r["request_id"])
            ids.add(r["request_id"])
        self.assertEqual(len(ids), 10)


class ErrorsTest(WispTestCase):

    def assertFunctionError(self, r, status="error"):
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], status, r)
        self.assertIn("x-wisp-function-error", r.headers, r.headers)
        resp = r.json["response"]
        for key in ("errorType", "errorMessage", "stackTrace"):
            self.assertIn(key, resp, resp)
        return resp

    def test_node_exception(self):
        fid = self.deploy("exports.handler = async () => {"
                          " console.log('before'); throw new TypeError('boom here'); };")
        r = self.wisp.invoke(fid)
        resp = self.assertFunctionError(r)
        self.assertEqual(resp["errorType"], "TypeError")
        self.assertEqual(resp["errorMessage"], "boom here")
        self.assertIsInstance(resp["stackTrace"], list)
        self.assertIn("before", r.json["logs"])
        self.assertTrue(any("boom here" in line for line in r.json["logs"]), r.json["logs"])
        # The instance survives a handled exception and the next call works.
        r2 = self.wisp.invoke(fid)
        self.assertEqual(r2.json["status"], "error")

    def test_python_exception(self):
        fid = self.deploy("def handler(event):\n    print('before')\n"
                          "    raise ValueError('bad value')\n", runtime="python")
        r = self.wisp.invoke(fid)
        resp = self.assertFunctionError(r)
        self.assertEqual(resp["errorType"], "ValueError")
        self.assertEqual(resp["errorMessage"], "bad value")
        self.assertIn("before", r.json["logs"])
        self.assertTrue(any("bad value" in line for line in r.json["logs"]), r.json["logs"])

    def test_timeout_node_and_python(self):
        for runtime, code in (
                ("node", "exports.handler = async () => { while (true) {} };"),
                ("node", "exports.handler = () => new Promise(() => {});"),
                ("python", "import time\ndef handler(event):\n    time.sleep(30)\n")):
            with self.subTest(runtime=runtime, code=code):
                fid = self.deploy(code, runtime=runtime, timeout_seconds=1)
                t0 = time.monotonic()
                r = self.wisp.invoke(fid)
                elapsed = time.monotonic() - t0
                resp = self.assertFunctionError(r, status="timeout")
                self.assertEqual(r.headers["x-wisp-function-error"], "Timeout")
                self.assertIn("Task timed out after 1.00 seconds", resp["errorMessage"])
                self.assertGreaterEqual(elapsed, 0.9)
                self.assertLess(elapsed, 5)
                self.wisp.record_instances(fid)

    def test_timeout_then_next_call_works(self):
        fid = self.deploy("exports.handler = async (e) => { if (e.hang) await new Promise("
                          "r => setTimeout(r, 5000)); return 'ok'; };", timeout_seconds=1)
        self.invoke_ok(fid)
        self.wisp.record_instances(fid)
        r = self.wisp.invoke(fid, {"hang": True})
        self.assertEqual(r.json["status"], "timeout", r)
        self.assertEqual(self.invoke_ok(fid)["response"], "ok")

    def test_crash_then_fresh_instance(self):
        fid = self.deploy("const id = Math.random();\n"
                          "exports.handler = async (e) => { if (e.crash) process.exit(1);"
                          " return id; };")
        first = self.invoke_ok(fid)["response"]
        item = self.wisp.function(fid)
        old_pids = {i["pid"] for i in item["instances"]}
        r = self.wisp.invoke(fid, {"crash": True})
        resp = self.assertFunctionError(r)
        self.assertIn("runtime exited with code 1", resp["errorMessage"])
        second = self.invoke_ok(fid)["response"]
        self.assertNotEqual(first, second, "the crashed instance must not serve again")
        item = self.wisp.function(fid)
        live = {i["pid"] for i in item["instances"]}
        for pid in old_pids & live:
            self.fail(f"crashed instance pid {pid} still listed")

    def test_crash_python(self):
        fid = self.deploy("import os\ndef handler(event):\n"
                          "    if event.get('crash'):\n        os._exit(3)\n    return 'ok'\n",
                          runtime="python")
        r = self.wisp.invoke(fid, {"crash": True})
        resp = self.assertFunctionError(r)
        self.assertIn("runtime exited with code 3", resp["errorMessage"])
        self.assertEqual(self.invoke_ok(fid)["response"], "ok")

    def test_oom_node(self):
        fid = self.deploy("exports.handler = async (e) => { if (e.big) {"
                          " const b = Buffer.alloc(300 * 1024 * 1024).fill(1);"
                          " return b.length; } return 'small'; };", memory_mb=128)
        self.wisp.invoke(fid, {})
        self.wisp.record_instances(fid)
        r = self.wisp.invoke(fid, {"big": True})
        resp = self.assertFunctionError(r)
        self.assertIn("out of memory (limit 128 MB)", resp["errorMessage"])
        self.assertEqual(self.invoke_ok(fid)["response"], "small")

    def test_oom_python(self):
        fid = self.deploy("def handler(event):\n    if event.get('big'):\n"
                          "        b = bytearray(300 * 1024 * 1024)\n"
                          "        for i in range(0, len(b), 4096):\n            b[i] = 1\n"
                          "        return len(b)\n    return 'small'\n",
                          runtime="python", memory_mb=128)
        r = self.wisp.invoke(fid, {"big": True})
        resp = self.assertFunctionError(r)
        self.assertIn("out of memory (limit 128 MB)", resp["errorMessage"])
        self.assertEqual(self.invoke_ok(fid)["response"], "small")

    def test_response_over_limit(self):
        fid = self.deploy("exports.handler = async (e) => e.big ? 'z'.repeat(7 * 1024 * 1024)"
                          " : 'small';", memory_mb=512)
        r = self.wisp.invoke(fid, {"big": True})
        # Over the 6 MiB response limit: the call fails with a readable error, nothing hangs.
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "error", repr(r)[:300])
        self.assertLess(len(r.body), 1 << 20)
        self.assertEqual(self.invoke_ok(fid)["response"], "small")
        self.assertEqual(self.wisp.health()["status"], "ok")

    def test_undefined_result_is_null(self):
        fid = self.deploy("exports.handler = async () => {};")
        self.assertIsNone(self.invoke_ok(fid)["response"])

    def test_unserializable_result(self):
        fid = self.deploy("exports.handler = async () => { const a = {}; a.self = a;"
                          " return a; };")
        r = self.wisp.invoke(fid)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "error", r)
        fid = self.deploy("def handler(event):\n    return object()\n", runtime="python")
        r = self.wisp.invoke(fid)
        self.assertEqual(r.json["status"], "error", r)
        self.assertEqual(self.invoke_ok(
            self.deploy("def handler(e):\n    return None\n", runtime="python"))["response"],
            None)


class DeployErrorsTest(WispTestCase):

    def assertDeployError(self, fid, *needles):
        item = self.wisp.wait_state(fid)
        self.assertEqual(item["state"], "error", item)
        self.assertIsInstance(item.get("error"), str, item)
        for needle in needles:
            self.assertIn(needle, item["error"], item)
        r = self.wisp.invoke(fid)
        self.assertEqual(r.status, 409, r)
        self.assertIsInstance(r.json.get("error"), str)
        return item

    def create(self, code, runtime="node", **spec):
        return self.wisp.create(name=self.unique_name(), runtime=runtime, code=code, **spec)

    def test_js_syntax_error_names_line(self):
        fid = self.create("// line 1\n// line 2\nasync function handler(event) {\n"
                          "  return { a: ;\n}\n")
        item = self.assertDeployError(fid)
        self.assertRegex(item["error"], r"(:|line )4\b", item["error"])
        self.assertIn("SyntaxError", item["error"])

    def test_python_syntax_error(self):
        fid = self.create("def handler(event):\n    return (\n", runtime="python")
        item = self.assertDeployError(fid)
        self.assertIn("SyntaxError", item["error"])

    def test_missing_handler(self):
        fid = self.create("async function other() { return 1; }")
        self.assertDeployError(fid, "handler")
        fid = self.create("def other(event):\n    return 1\n", runtime="python")
        self.assertDeployError(fid, "handler")
        fid = self.create("async function handler() { return 1; }", handler="index.nothere")
        self.assertDeployError(fid, "nothere")

    def test_handler_not_a_function(self):
        fid = self.create("exports.handler = 42;")
        self.assertDeployError(fid, "handler")

    def test_exception_at_import(self):
        fid = self.create("throw new Error('init exploded');\n"
                          "async function handler() { return 1; }")
        self.assertDeployError(fid, "init exploded")
        fid = self.create("raise RuntimeError('py init exploded')\n"
                          "def handler(event):\n    return 1\n", runtime="python")
        self.assertDeployError(fid, "py init exploded")

    def check_bad_handler(self, handler):
        """A handler that is not a name in the function's own code: refused at create (400)
        or deployed into state error; either way with a readable reason and never run."""
        r = self.wisp.request("POST", "/v1/functions", {
            "name": self.unique_name(), "runtime": "node", "handler": handler,
            "code": "async function handler() { return 'ran'; }"})
        if r.status == 400:
            self.assertIn("handler", r.json["error"])
            return
        self.assertEqual(r.status, 201, r)
        self.assertDeployError(r.json["id"], "handler")

    def test_path_traversal_handler(self):
        self.check_bad_handler("../../etc/passwd.handler")
        self.check_bad_handler("/etc/passwd.handler")

    def test_empty_handler(self):
        self.check_bad_handler("")

    def test_error_function_can_be_fixed(self):
        fid = self.create("async function handler( {")
        self.assertDeployError(fid)
        r = self.wisp.request("PUT", f"/v1/functions/{fid}",
                              {"code": "async function handler() { return 'fixed'; }"})
        self.assertEqual(r.status, 200, r)
        item = self.wisp.wait_state(fid)
        self.assertEqual(item["state"], "ready", item)
        self.assertNotIn("error", item)
        self.assertEqual(self.invoke_ok(fid)["response"], "fixed")


class LogsTest(WispTestCase):

    def test_node_logs_in_order_and_stored(self):
        fid = self.deploy("exports.handler = async (e) => { for (let i = 0; i < 5; i++)"
                          " console.log('line ' + i); console.error('to stderr');"
                          " return e.n; };")
        r = self.invoke_ok(fid, {"n": 1})
        lines = [l for l in r["logs"] if l.startswith("line ")]
        self.assertEqual(lines, [f"line {i}" for i in range(5)], r["logs"])
        self.assertTrue(any("to stderr" in l for l in r["logs"]), r["logs"])
        # Logs of one call do not leak into the next.
        r2 = self.invoke_ok(fid, {"n": 2})
        self.assertEqual([l for l in r2["logs"] if l.startswith("line ")],
                         [f"line {i}" for i in range(5)])

        stored = self.wait_logs(fid, 2)
        self.assertEqual([s["request_id"] for s in stored[:2]],
                         [r2["request_id"], r["request_id"]])  # newest first
        rec = stored[1]
        self.assertEqual(rec["function_id"], fid)
        self.assertEqual(rec["status"], "success")
        self.assertEqual(rec["event"], {"n": 1})
        self.assertEqual(rec["response"], 1)
        self.assertEqual(rec["version"], 1)
        self.assertIn("line 4", rec["logs"])
        for key in ("id", "duration_ms", "memory_used_mb", "invoked_at"):
            self.assertIn(key, rec)
        self.assertGreater(rec["memory_used_mb"] or 0, 0, rec)

    def wait_logs(self, fid, n, query="", timeout=5):
        # Records go to the store through a batched writer: wait for them.
        deadline = time.monotonic() + timeout
        while True:
            r = self.wisp.request("GET", f"/v1/functions/{fid}/logs{query}")
            self.assertEqual(r.status, 200, r)
            if len(r.json["items"]) >= n or time.monotonic() > deadline:
                return r.json["items"]
            time.sleep(0.05)

    # Allocates and touches alloc_mb MiB, then sleeps or crashes if asked; returns an id of the
    # instance.
    MEMORY_PYTHON = ("import os, time, uuid\n"
                     "INSTANCE = uuid.uuid4().hex\n"
                     "def handler(event):\n"
                     "    if event.get('alloc_mb'):\n"
                     "        b = bytearray(event['alloc_mb'] << 20)\n"
                     "        b[::4096] = b'\\x01' * len(range(0, len(b), 4096))\n"
                     "    if event.get('sleep'):\n"
                     "        time.sleep(event['sleep'])\n"
                     "    if event.get('crash'):\n"
                     "        os._exit(3)\n"
                     "    return INSTANCE\n")

    def memory_used(self, fid, replies):
        records = self.wait_logs(fid, len(replies))
        used = {r["request_id"]: r["memory_used_mb"] for r in records}
        return [used.get(reply["request_id"]) for reply in replies]

    def test_memory_used_is_the_instances_peak(self):
        fid = self.deploy(self.MEMORY_PYTHON, runtime="python", memory_mb=256)
        small = self.invoke_ok(fid)
        big = self.invoke_ok(fid, {"alloc_mb": 60})
        after = self.invoke_ok(fid)
        self.assertEqual(small["response"], big["response"], "one warm instance ran all three")
        self.assertEqual(small["response"], after["response"])
        used = self.memory_used(fid, [small, big, after])
        self.assertIsNotNone(used[0], used)
        self.assertGreater(used[0], 0)
        self.assertLess(used[0], 60)
        self.assertGreaterEqual(used[1], 60)
        self.assertLessEqual(used[1], 256)
        # Lambda's "Max Memory Used": the instance's peak so far, never less than before.
        self.assertGreaterEqual(used[2], used[1])
        # The invoke reply says what its record says.
        self.assertEqual([r["memory_used_mb"] for r in (small, big, after)], used)

    def test_memory_used_of_calls_that_end_the_instance(self):
        fid = self.deploy(self.MEMORY_PYTHON, runtime="python", memory_mb=256, timeout_seconds=1)
        timed_out = self.wisp.invoke(fid, {"alloc_mb": 60, "sleep": 10})
        self.assertEqual(timed_out.json["status"], "timeout", timed_out)
        crashed = self.wisp.invoke(fid, {"alloc_mb": 60, "crash": True})
        self.assertEqual(crashed.json["status"], "error", crashed)
        self.assertIn("runtime exited with code 3", crashed.json["response"]["errorMessage"])
        for used in self.memory_used(fid, [timed_out.json, crashed.json]):
            self.assertIsNotNone(used)
            self.assertGreaterEqual(used, 60)
            self.assertLessEqual(used, 256)

    def test_logs_pagination(self):
        fid = self.deploy("exports.handler = async (e) => e.i;")
        for i in range(5):
            self.invoke_ok(fid, {"i": i})
        items = self.wait_logs(fid, 5)
        self.assertEqual([it["response"] for it in items], [4, 3, 2, 1, 0])
        page = self.wait_logs(fid, 2, "?limit=2&offset=1")
        self.assertEqual([it["response"] for it in page], [3, 2])
        self.assertEqual(self.wait_logs(fid, 0, "?limit=2&offset=10"), [])

    def test_python_print_and_stored_error(self):
        fid = self.deploy("import sys\ndef handler(event):\n    print('hello')\n"
                          "    print('world', file=sys.stderr)\n"
                          "    raise KeyError('k')\n", runtime="python")
        r = self.wisp.invoke(fid, {"q": 1})
        self.assertEqual(r.json["status"], "error")
        self.assertIn("hello", r.json["logs"])
        self.assertLess(r.json["logs"].index("hello"),
                        [i for i, l in enumerate(r.json["logs"]) if "world" in l][0])
        items = self.wait_logs(fid, 1)
        self.assertEqual(items[0]["status"], "error")
        self.assertEqual(items[0]["response"]["errorType"], "KeyError")
        self.assertIn("hello", items[0]["logs"])

    def test_timeout_is_stored(self):
        fid = self.deploy("exports.handler = async () => { console.log('started');"
                          " await new Promise(r => setTimeout(r, 5000)); };",
                          timeout_seconds=1)
        r = self.wisp.invoke(fid)
        self.assertEqual(r.json["status"], "timeout")
        self.assertIn("started", r.json["logs"])
        items = self.wait_logs(fid, 1)
        self.assertEqual(items[0]["status"], "timeout")

    def test_many_lines_truncated(self):
        fid = self.deploy("exports.handler = async (e) => { for (let i = 0; i < 100000; i++)"
                          " console.log('log line number ' + i); return 'done'; };")
        t0 = time.monotonic()
        r = self.wisp.invoke(fid)
        self.assertLess(time.monotonic() - t0, 20)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "success", r)
        self.assertEqual(r.json["response"], "done")
        logs = r.json["logs"]
        self.assertLess(len(logs), 100000)
        self.assertEqual(logs[0], "log line number 0")
        self.assertTrue(any("truncated" in l for l in logs), logs[-3:])
        self.assertEqual(self.invoke_ok(fid)["response"], "done")
        self.assertEqual(self.wisp.health()["status"], "ok")

    def test_huge_line_without_newline_truncated(self):
        fid = self.deploy("exports.handler = async (e) => { if (e.big)"
                          " process.stdout.write('x'.repeat(50 * 1024 * 1024)); return 'ok'; };",
                          memory_mb=1024)
        r = self.wisp.invoke(fid, {"big": True})
        self.assertEqual(r.status, 200, r)
        self.assertIn(r.json["status"], ("success",), r)
        total = sum(len(l) for l in r.json["logs"])
        self.assertLess(total, 5 << 20)
        self.assertTrue(any("truncated" in l for l in r.json["logs"]),
                        [l[-100:] for l in r.json["logs"]])
        self.assertEqual(self.invoke_ok(fid)["response"], "ok")
        self.assertEqual(self.wisp.health()["status"], "ok")

    def test_huge_line_python(self):
        fid = self.deploy("import sys\ndef handler(event):\n"
                          "    sys.stdout.write('y' * (50 * 1024 * 1024))\n"
                          "    sys.stdout.flush()\n    return 'ok'\n",
                          runtime="python", memory_mb=1024)
        r = self.wisp.invoke(fid)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "success", r)
        self.assertTrue(any("truncated" in l for l in r.json["logs"]))
        self.assertEqual(self.invoke_ok(fid)["response"], "ok")


if __name__ == "__main__":
    unittest.main()
