"""End-to-end: the program API beside /v1 (/functions, /invoke, /invocations, /health) with its
{"data": ...} bodies, base64 code, Go duration strings, and program-style functions in Go,
Python and Node.js that read FUNCTION_PAYLOAD (and FUNCTION_HEADERS) and print their result."""

import base64
import unittest

from async_support import WispdTestCase

GO = '''package main

import (
	"encoding/json"
	"fmt"
	"os"
)

type Request struct {
	Name string `json:"name"`
}

type Response struct {
	Message  string `json:"message"`
	Greeting string `json:"greeting"`
	ID       string `json:"id"`
}

func main() {
	var req Request
	json.Unmarshal([]byte(os.Getenv("FUNCTION_PAYLOAD")), &req)
	fmt.Fprintln(os.Stderr, "go program ran")
	out, _ := json.Marshal(Response{Message: fmt.Sprintf("Hello, %s!", req.Name),
		Greeting: os.Getenv("GREETING"), ID: os.Getenv("INVOCATION_ID")})
	fmt.Println(string(out))
}
'''

PYTHON = '''#!/usr/bin/env python3
import json
import os

def main():
    payload = json.loads(os.environ.get('FUNCTION_PAYLOAD', '{}'))
    name = payload.get('name', 'World')
    print("a log line before the result")
    print(json.dumps({'message': f'Hello, {name}!', 'greeting': os.environ.get('GREETING'),
                      'id': os.environ.get('INVOCATION_ID')}))

if __name__ == '__main__':
    main()
'''

NODE = '''#!/usr/bin/env node
function main() {
    const payload = JSON.parse(process.env.FUNCTION_PAYLOAD || '{}');
    const name = payload.name || 'World';
    console.log(JSON.stringify({message: `Hello, ${name}!`, greeting: process.env.GREETING,
                                id: process.env.INVOCATION_ID}));
}
main();
'''

FAILS = '''import sys
print("about to fail", file=sys.stderr)
sys.exit(3)
'''

PLAIN = '''print("just text")'''


def b64(text):
    return base64.b64encode(text.encode()).decode()


class ProgramApiTest(WispdTestCase):
    def create(self, name, runtime, code, **extra):
        body = {"name": name, "version": "1.0.0", "runtime": runtime, "handler": "main",
                "code": b64(code), "timeout": "30s", "memory_mb": 128, "max_concurrency": 10,
                "environment": {"GREETING": "hi"}, "metadata": {"owner": "tests"}}
        body.update(extra)
        r = self.wisp.request("POST", "/functions", body, timeout=300)
        self.assertEqual(r.status, 201, r)
        return r.json["data"]

    def invoke(self, fid, payload, **extra):
        body = {"function_id": fid, "payload": payload, "headers": {"X-Test": "1"}}
        body.update(extra)
        r = self.wisp.request("POST", "/invoke", body)
        self.assertEqual(r.status, 202, r)
        return r.json["data"]["invocation_id"]

    def result(self, iid, timeout=60):
        def finished():
            r = self.wisp.request("GET", f"/invocations/{iid}")
            self.assertEqual(r.status, 200, r)
            d = r.json["data"]
            return d if d["status"] in ("completed", "failed") else None
        return self.wisp.wait_for(finished, timeout=timeout, what=f"invocation {iid}")

    def test_programs_in_go_python_and_node(self):
        for runtime, code in (("go", GO), ("python", PYTHON), ("nodejs", NODE)):
            with self.subTest(runtime=runtime):
                f = self.create(f"hello-{runtime}", runtime, code)
                self.assertEqual(f["runtime"], runtime)
                self.assertEqual(f["status"], "ready")
                self.assertEqual(f["version"], "1.0.0")
                self.assertEqual(f["timeout"], "30s")
                self.assertEqual(f["environment"], {"GREETING": "hi"})
                self.assertEqual(f["metadata"], {"owner": "tests"})
                self.assertEqual(base64.b64decode(f["code"]).decode(), code)
                iid = self.invoke(f["id"], {"name": "Test"})
                d = self.result(iid)
                self.assertEqual(d["status"], "completed", d)
                self.assertEqual(d["result"], {"message": "Hello, Test!", "greeting": "hi",
                                               "id": iid})
                self.assertEqual(d["payload"], {"name": "Test"})
                self.assertEqual(d["headers"], {"X-Test": "1"})
                self.assertEqual(d["attempts"], 1)
                if runtime == "python":
                    self.assertIn("a log line before the result", d["logs"])
                if runtime == "go":
                    self.assertIn("go program ran", d["logs"])
                # The same function through /v1's sync path.
                r = self.wisp.request("POST", f"/v1/functions/{f['id']}/invoke", {"name": "Sync"})
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json["response"]["message"], "Hello, Sync!")

    def test_function_crud(self):
        w = self.wisp
        f = self.create("crud", "python", PYTHON, timeout="1m30s")
        self.assertEqual(f["timeout"], "1m30s")
        fid = f["id"]
        r = w.request("GET", f"/functions/{fid}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["data"]["name"], "crud")
        listed = w.request("GET", "/functions?runtime=python").json["data"]
        self.assertIn(fid, [x["id"] for x in listed])
        self.assertTrue(all(x["runtime"] == "python" for x in listed))
        self.assertNotIn(fid, [x["id"] for x in w.request("GET", "/functions?runtime=go").json["data"]])
        self.assertIn(fid, [x["id"] for x in w.request("GET", "/functions").json["data"]])

        new_code = PYTHON.replace("Hello", "Goodbye")
        r = w.request("PUT", f"/functions/{fid}", {"code": b64(new_code), "timeout": "60s",
                                                    "memory_mb": 256, "handler": "main"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["data"]["timeout"], r.json["data"]["memory_mb"]), ("1m0s", 256))
        d = self.result(self.invoke(fid, {"name": "X"}))
        self.assertEqual(d["result"]["message"], "Goodbye, X!")

        # /v1 sees the same function with its seed-002 fields.
        item = w.request("GET", f"/v1/functions/{fid}").json["item"]
        self.assertEqual((item["style"], item["version_label"], item["env"]),
                         ("program", "1.0.0", {"GREETING": "hi"}))

        r = w.request("DELETE", f"/functions/{fid}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(w.request("GET", f"/functions/{fid}").status, 404)
        self.assertEqual(w.request("DELETE", f"/functions/{fid}").status, 404)
        self.assertEqual(w.request("PUT", f"/functions/{fid}", {"timeout": "5s"}).status, 404)

    def test_failures_and_plain_text(self):
        f = self.create("exit-3", "python", FAILS, max_retries=0)
        d = self.result(self.invoke(f["id"], {}))
        self.assertEqual(d["status"], "failed", d)
        self.assertIn("exit status 3", d["error"])
        self.assertIn("about to fail", d["error"])
        self.assertIn("about to fail", d["logs"])
        self.assertIsNotNone(d["dead_letter_reason"])

        p = self.create("plain", "python", PLAIN)
        d = self.result(self.invoke(p["id"], None))
        self.assertEqual((d["status"], d["result"]), ("completed", "just text"))

        # Per-call timeout (Go duration): the attempt times out.
        s = self.create("sleeper", "python", "import time\ntime.sleep(5)\nprint('{}')\n",
                        max_retries=0)
        d = self.result(self.invoke(s["id"], {}, timeout="500ms"))
        self.assertEqual(d["status"], "failed", d)
        self.assertEqual(d["wisp_status"], "dead_letter")

    def test_event_too_large_for_function_payload(self):
        # Seed 002 hands the event over in FUNCTION_PAYLOAD, and Linux caps one environment
        # string at 128 KiB: a bigger event is the function's clear error, not a failed exec.
        f = self.create("big-payload", "python", PYTHON)
        r = self.wisp.request("POST", f"/v1/functions/{f['id']}/invoke",
                              {"name": "x" * (200 * 1024)})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "error", r.json)
        self.assertEqual(r.json["response"]["errorType"], "Runtime.PayloadTooLarge")
        self.assertIn("FUNCTION_PAYLOAD", r.json["response"]["errorMessage"])
        r = self.wisp.request("POST", f"/v1/functions/{f['id']}/invoke", {"name": "Small"})
        self.assertEqual(r.json["response"]["message"], "Hello, Small!", r.json)

    def test_invocation_listing(self):
        w = self.wisp
        f = self.create("listed", "nodejs", NODE)
        ids = [self.invoke(f["id"], {"name": str(i)}) for i in range(3)]
        for iid in ids:
            self.result(iid)
        r = w.request("GET", f"/invocations?function_id={f['id']}&status=completed")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sorted(d["id"] for d in r.json["data"]), sorted(ids))
        r = w.request("GET", f"/invocations?function_id={f['id']}&status=pending")
        self.assertEqual(r.json["data"], [])
        self.assertEqual(w.request("GET", "/invocations?status=bogus").status, 400)
        self.assertEqual(w.request("GET", "/invocations/not-an-id").status, 404)

    def test_bad_input_gets_clear_errors(self):
        w = self.wisp
        base = {"name": "bad", "runtime": "python", "code": b64(PYTHON), "timeout": "30s"}

        def post(**change):
            body = dict(base)
            body.update(change)
            return w.request("POST", "/functions", body, timeout=300)

        r = post(code="not base64!!")
        self.assertEqual(r.status, 400, r)
        self.assertIn("base64", r.json["error"])
        r = post(timeout="30 seconds")
        self.assertEqual(r.status, 400, r)
        self.assertIn("invalid duration", r.json["error"])
        r = post(timeout="-5s")
        self.assertEqual(r.status, 400, r)
        r = post(runtime="cobol")
        self.assertEqual(r.status, 400, r)
        self.assertIn("runtime", r.json["error"])
        r = post(environment={"A": 1})
        self.assertEqual(r.status, 400, r)
        r = post(metadata="x")
        self.assertEqual(r.status, 400, r)
        r = w.request("POST", "/functions", {"name": "nocode", "runtime": "go"})
        self.assertEqual(r.status, 400, r)
        r = w.request("POST", "/functions", b"{not json")
        self.assertEqual(r.status, 400, r)

        r = post(name="broken-go", runtime="go", code=b64("package main\nfunc main() { x := }\n"))
        self.assertEqual(r.status, 400, r)
        self.assertIn("syntax error", r.json["error"])
        self.assertNotIn("broken-go", [f["name"] for f in w.request("GET", "/functions").json["data"]])

        r = w.request("POST", "/invoke", {"function_id": "00000000-0000-4000-8000-000000000000",
                                          "payload": {}})
        self.assertEqual(r.status, 404, r)
        self.assertIn("not found", r.json["error"])
        r = w.request("POST", "/invoke", {"payload": {}})
        self.assertEqual(r.status, 400, r)
        f = self.create("target", "python", PYTHON)
        r = w.request("POST", "/invoke", {"function_id": f["id"], "timeout": "soon"})
        self.assertEqual(r.status, 400, r)
        self.assertIn("invalid duration", r.json["error"])
        r = w.request("POST", "/invoke", {"function_id": f["id"], "headers": {"a": 1}})
        self.assertEqual(r.status, 400, r)

    def test_output_before_a_failing_exit_reaches_the_logs(self):
        # Everything a failing program printed is what its author has to go on: stdout too,
        # including the last line (which a successful run would have returned).
        code = ('import sys\nprint("step 1 done")\nprint("step 2: giving up")\n'
                'print("to stderr", file=sys.stderr)\nsys.exit(2)\n')
        f = self.create("prints-then-fails", "python", code, max_retries=0)
        d = self.result(self.invoke(f["id"], {}))
        self.assertEqual(d["status"], "failed", d)
        for line in ("step 1 done", "step 2: giving up", "to stderr"):
            self.assertIn(line, d["logs"], d)
        r = self.wisp.request("POST", f"/v1/functions/{f['id']}/invoke", {})
        self.assertEqual(r.json["status"], "error", r.json)
        self.assertIn("step 2: giving up", r.json["logs"])
        self.assertEqual(r.json["response"]["errorType"], "Runtime.ExitError")
        self.assertEqual(r.json["response"]["stackTrace"], [])

    def test_headers_reach_the_program_as_function_headers(self):
        code = 'import os\nprint(os.environ["FUNCTION_HEADERS"])\n'
        f = self.create("echo-headers", "python", code)
        # A CR LF in a value must arrive as data, never split the Runtime API's header.
        headers = {"X-Test": "1", "X-Unicode": "\u00e9t\u00e9", "Authorization": "Bearer t",
                   "X-Split": "a\r\nLambda-Runtime-Aws-Request-Id: evil"}
        d = self.result(self.invoke(f["id"], {}, headers=headers))
        self.assertEqual(d["status"], "completed", d)
        self.assertEqual(d["result"], headers)
        self.assertEqual(d["headers"], headers)
        # Without headers: an empty object, still JSON.
        r = self.wisp.request("POST", "/invoke", {"function_id": f["id"], "payload": {}})
        self.assertEqual(self.result(r.json["data"]["invocation_id"])["result"], {})
        # A handler function sees them as its Lambda client context.
        fid = self.wisp.request("POST", "/v1/functions", {
            "name": "cc-node", "runtime": "node",
            "code": "exports.handler = async (e, ctx) => ctx.clientContext;"}).json["id"]
        d = self.result(self.invoke(fid, {}, headers={"X-Test": "2"}))
        self.assertEqual(d["result"], {"custom": {"X-Test": "2"}}, d)

    def test_unknown_fields_and_parameters_are_refused(self):
        w = self.wisp
        r = w.request("POST", "/functions", {"name": "typo", "runtime": "python",
                                             "code": b64(PYTHON), "timeout_seconds": 5,
                                             "env": {"A": "1"}})
        self.assertEqual(r.status, 400, r)
        self.assertIn('"timeout_seconds" (did you mean "timeout"?)', r.json["error"])
        self.assertIn('"env" (did you mean "environment"?)', r.json["error"])
        self.assertEqual(w.request("GET", "/functions?runtme=go").status, 400)
        self.assertEqual(w.request("GET", "/invocations?state=completed").status, 400)
        r = w.request("POST", "/invoke", {"function_id": "x", "payload": {}, "header": {}})
        self.assertEqual(r.status, 400, r)
        self.assertIn('did you mean "headers"', r.json["error"])
        r = w.request("POST", "/functions", dict(name="java", runtime="java21", code=b64("x")))
        self.assertEqual(r.status, 400, r)
        for name in ("java21", "go", "python", "nodejs", "python3.12", "nodejs22.x"):
            self.assertIn(name, r.json["error"])

    def test_listing_is_metadata_and_paginated(self):
        w = self.wisp
        ids = [self.create(f"page-{i}", "python", PYTHON)["id"] for i in range(3)]
        listed = w.request("GET", "/functions").json["data"]
        self.assertTrue(listed)
        self.assertTrue(all("code" not in f for f in listed), listed)
        self.assertIn("runtime_version", listed[0])
        pages = [w.request("GET", f"/functions?runtime=python&limit=1&offset={i}").json["data"]
                 for i in range(len(listed) + 1)]
        seen = [p[0]["id"] for p in pages if p]
        for fid in ids:
            self.assertIn(fid, seen)
        self.assertEqual(len(seen), len(set(seen)))
        self.assertEqual(w.request("GET", "/functions?limit=0").status, 400)
        self.assertIn("code", w.request("GET", f"/functions/{ids[0]}").json["data"])

    def test_health(self):
        r = self.wisp.request("GET", "/health")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["status"], "ok")
        self.assertEqual(r.json["data"]["status"], "ok")


if __name__ == "__main__":
    unittest.main()
