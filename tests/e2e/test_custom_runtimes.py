"""Custom runtimes (provided, provided.al2, provided.al2023): the zip's own `bootstrap` is the
runtime and speaks the Lambda Runtime API at AWS_LAMBDA_RUNTIME_API. Proved with third-party
clients only, none of Wisp's shims: a shell loop on curl, a Go program on net/http, and AWS's
own Node runtime interface client (aws-lambda-ric, installed by scripts/install-deps
--test-clients)."""

import base64
import functools
import io
import json
import os
import shutil
import stat
import subprocess
import tempfile
import unittest
import zipfile

from wisp_fixture import WispTestCase

# Where scripts/install-deps --test-clients builds it: the user's cache, shared by every clone.
RIC_DIR = os.path.join(
    os.environ.get("WISP_RIC_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "wisp", "aws-lambda-ric-3.3.0"),
    "node_modules", "aws-lambda-ric")

# Lambda's documented shell bootstrap: one long poll for the next event, one POST of the
# result, with curl. Event bodies may hold anything, so the response is built by printf.
SHELL_BOOTSTRAP = r"""#!/bin/sh
set -eu
api="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
headers=/tmp/headers
while true; do
  event=$(curl -sS -D "$headers" "$api/invocation/next")
  request_id=$(grep -i '^Lambda-Runtime-Aws-Request-Id:' "$headers" | cut -d: -f2 | tr -d ' \r')
  echo "handling $request_id"
  case "$event" in
    *'"fail"'*)
      # An error the way a minimal runtime reports one: its type in the header, plain text.
      curl -sS -X POST -H 'Lambda-Runtime-Function-Error-Type: Shell.Refused' \
        --data-binary 'the shell said no' "$api/invocation/$request_id/error" >/dev/null ;;
    *)
      printf '{"echo":%s,"handler":"%s","request_id":"%s"}' "$event" "$_HANDLER" "$request_id" |
        curl -sS -X POST --data-binary @- "$api/invocation/$request_id/response" >/dev/null ;;
  esac
done
"""

# The Runtime API loop on the standard library only (no module is fetched: GO111MODULE=off).
GO_BOOTSTRAP = r"""package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
)

var api = "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime"

func post(path, errorType string, document interface{}) {
	body, _ := json.Marshal(document)
	request, _ := http.NewRequest("POST", api+path, bytes.NewReader(body))
	if errorType != "" {
		request.Header.Set("Lambda-Runtime-Function-Error-Type", errorType)
	}
	response, err := http.DefaultClient.Do(request)
	if err != nil {
		fmt.Fprintln(os.Stderr, "post:", err)
		os.Exit(1)
	}
	io.Copy(io.Discard, response.Body)
	response.Body.Close()
}

func main() {
	if reason := os.Getenv("FAIL_INIT"); reason != "" {
		fmt.Println("init failing on purpose")
		post("/init/error", "Custom.InitFailed",
			map[string]interface{}{"errorType": "Custom.InitFailed", "errorMessage": reason})
		os.Exit(1)
	}
	for {
		response, err := http.Get(api + "/invocation/next")
		if err != nil {
			fmt.Fprintln(os.Stderr, "next:", err)
			os.Exit(1)
		}
		body, _ := io.ReadAll(response.Body)
		response.Body.Close()
		id := response.Header.Get("Lambda-Runtime-Aws-Request-Id")
		var event map[string]interface{}
		if err := json.Unmarshal(body, &event); err != nil {
			post("/invocation/"+id+"/error", "Custom.BadEvent",
				map[string]interface{}{"errorType": "Custom.BadEvent", "errorMessage": err.Error()})
			continue
		}
		if reason, ok := event["fail"].(string); ok {
			post("/invocation/"+id+"/error", "Custom.Refused", map[string]interface{}{
				"errorType": "Custom.Refused", "errorMessage": reason,
				"stackTrace": []string{"main.go: the handler refused"}})
			continue
		}
		fmt.Println("go handled", id)
		post("/invocation/"+id+"/response", "", map[string]interface{}{
			"event":      event,
			"request_id": id,
			"arn":        response.Header.Get("Lambda-Runtime-Invoked-Function-Arn"),
			"deadline":   response.Header.Get("Lambda-Runtime-Deadline-Ms"),
			"handler":    os.Getenv("_HANDLER"),
			"task_root":  os.Getenv("LAMBDA_TASK_ROOT"),
		})
	}
}
"""

NODE_HANDLER = """exports.handler = async (event, context) => {
  if (event.fail) throw new TypeError(event.fail);
  console.log('node handled', context.awsRequestId);
  return {
    sum: event.a + event.b,
    requestId: context.awsRequestId,
    functionName: context.functionName,
    timeLeft: context.getRemainingTimeInMillis() > 0,
  };
};
"""

RIC_BOOTSTRAP = """#!/bin/sh
cd "$LAMBDA_TASK_ROOT"
exec node node_modules/aws-lambda-ric/bin/index.mjs "$_HANDLER"
"""


def make_zip(files, links=None):
    """files: {name: bytes or text, or (content, mode)}; links: {name: target}. Unix modes and
    links are kept as `zip -y` writes them."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in files.items():
            data, mode = content if isinstance(content, tuple) else (content, 0o644)
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, target)
    return buffer.getvalue()


@functools.lru_cache(maxsize=None)
def go_binary():
    """Builds GO_BOOTSTRAP (once per run) with the host's Go, statically, without the network."""
    go = shutil.which("go")
    if go is None:
        raise unittest.SkipTest("no go toolchain on this host (Debian's golang-go)")
    work = tempfile.mkdtemp(prefix="wisp-go-bootstrap-")
    try:
        with open(os.path.join(work, "main.go"), "w") as f:
            f.write(GO_BOOTSTRAP)
        env = dict(os.environ, CGO_ENABLED="0", GO111MODULE="off", GOPROXY="off", GOFLAGS="")
        subprocess.run([go, "build", "-o", "bootstrap", "main.go"], cwd=work, env=env,
                       check=True, capture_output=True, timeout=600)
        with open(os.path.join(work, "bootstrap"), "rb") as f:
            return f.read()
    finally:
        shutil.rmtree(work, ignore_errors=True)


class CustomRuntimeTest(WispTestCase):

    def create_zip(self, files, runtime="provided.al2023", handler="function.handler", links=None,
                   **spec):
        spec.setdefault("name", self.unique_name())
        data = base64.b64encode(make_zip(files, links)).decode()
        r = self.wisp.request("POST", "/v1/functions",
                              dict(spec, runtime=runtime, handler=handler, zip=data))
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["runtime"], runtime, r)
        return r.json["id"]

    def deploy_zip(self, files, **spec):
        fid = self.create_zip(files, **spec)
        item = self.wisp.wait_state(fid, timeout=60)
        self.assertEqual(item["state"], "ready", item)
        return item

    def deploy_failure(self, files, **spec):
        fid = self.create_zip(files, **spec)
        item = self.wisp.wait_state(fid, timeout=60)
        self.assertEqual(item["state"], "error", item)
        # Nothing runs for a function that never loaded: the call says so.
        r = self.wisp.invoke(fid)
        self.assertEqual(r.status, 409, r)
        return item

    def lambda_invoke(self, name, event):
        return self.wisp.request("POST", f"/2015-03-31/functions/{name}/invocations",
                                 raw=json.dumps(event).encode())

    def test_a_shell_bootstrap_using_curl(self):
        if not (os.access("/bin/sh", os.X_OK) and shutil.which("curl", path="/usr/bin:/bin")):
            self.skipTest("the sandbox sees the host's /usr: this host has no /bin/sh or curl")
        item = self.deploy_zip({"bootstrap": (SHELL_BOOTSTRAP, 0o755)}, handler="echo.sh")
        for n in range(3):  # the same instance loops over several events
            result = self.invoke_ok(item["id"], {"n": n, "text": "a \"quoted\" word"})
            response = result["response"]
            self.assertEqual(response["echo"], {"n": n, "text": "a \"quoted\" word"})
            self.assertEqual(response["handler"], "echo.sh")
            self.assertEqual(response["request_id"], result["request_id"])
            self.assertIn(f"handling {result['request_id']}", result["logs"])
        r = self.wisp.invoke(item["id"], {"fail": True})
        self.assertEqual(r.json["status"], "error", r)
        self.assertEqual(r.json["response"]["errorType"], "Shell.Refused", r)
        self.assertEqual(r.json["response"]["errorMessage"], "the shell said no", r)
        self.assertEqual(self.invoke_ok(item["id"], {"n": 9})["response"]["echo"], {"n": 9})

    def test_a_go_binary_with_an_error_reply(self):
        binary = go_binary()
        item = self.deploy_zip({"bootstrap": (binary, 0o755)}, handler="my.handler::Main")
        response = self.invoke_ok(item["id"], {"x": 1})["response"]
        self.assertEqual(response["event"], {"x": 1})
        self.assertEqual(response["handler"], "my.handler::Main")
        self.assertEqual(response["task_root"], "/var/task")
        self.assertTrue(response["arn"].endswith(f":function:{item['name']}"), response)
        self.assertTrue(response["deadline"].isdigit(), response)

        # The runtime's /error: a function error with the runtime's errorType, on both APIs.
        r = self.wisp.invoke(item["id"], {"fail": "not today"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "error", r)
        self.assertEqual(r.json["response"]["errorType"], "Custom.Refused")
        self.assertEqual(r.json["response"]["errorMessage"], "not today")
        self.assertEqual(r.json["response"]["stackTrace"], ["main.go: the handler refused"])
        r = self.lambda_invoke(item["name"], {"fail": "still not"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("x-amz-function-error"), "Unhandled", r.headers)
        self.assertEqual(r.json["errorType"], "Custom.Refused", r)
        self.assertEqual(r.json["errorMessage"], "still not", r)
        # The loop goes on after an error.
        self.assertEqual(self.invoke_ok(item["id"], {"x": 2})["response"]["event"], {"x": 2})

        # Both APIs name the runtime as it was created.
        self.assertEqual(self.wisp.function(item["id"])["runtime"], "provided.al2023")
        r = self.wisp.request("GET", f"/2015-03-31/functions/{item['name']}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["Configuration"]["Runtime"], "provided.al2023", r)
        self.assertEqual(r.json["Configuration"]["Handler"], "my.handler::Main", r)
        r = self.wisp.request("GET", "/2015-03-31/functions/")
        runtimes = {f["FunctionName"]: f["Runtime"] for f in r.json["Functions"]}
        self.assertEqual(runtimes[item["name"]], "provided.al2023")

    def test_the_other_provided_identifiers(self):
        binary = go_binary()
        for runtime in ("provided", "provided.al2"):
            item = self.deploy_zip({"bootstrap": (binary, 0o755)}, runtime=runtime)
            self.assertEqual(self.invoke_ok(item["id"], {"r": runtime})["response"]["event"],
                             {"r": runtime})
            r = self.wisp.request("GET", f"/2015-03-31/functions/{item['name']}/configuration")
            self.assertEqual(r.json["Runtime"], runtime, r)
        # The bootstrap may be a link to the program elsewhere in the package.
        item = self.deploy_zip({"bin/app": (binary, 0o755)}, links={"bootstrap": "bin/app"})
        self.assertEqual(self.invoke_ok(item["id"], {"linked": 1})["response"]["event"],
                         {"linked": 1})

    def test_the_official_node_runtime_interface_client(self):
        if not os.path.isfile(os.path.join(RIC_DIR, "dist", "rapid-client.node")):
            self.skipTest(f"aws-lambda-ric is not installed in {RIC_DIR}"
                          ": run scripts/install-deps --test-clients (make test does; it builds the "
                          "client's native addon)")
        files = {"index.js": NODE_HANDLER, "bootstrap": (RIC_BOOTSTRAP, 0o755)}
        # The client as npm installed it: its entry point, its code and its native addon.
        for sub in ("package.json", "bin", "dist"):
            path = os.path.join(RIC_DIR, sub)
            paths = [path] if os.path.isfile(path) else [
                os.path.join(d, f) for d, _, names in os.walk(path) for f in names]
            for p in paths:
                with open(p, "rb") as f:
                    files["node_modules/aws-lambda-ric/" + os.path.relpath(p, RIC_DIR)] = (
                        f.read(), os.stat(p).st_mode & 0o777)
        item = self.deploy_zip(files, handler="index.handler", runtime="provided.al2023")
        result = self.invoke_ok(item["id"], {"a": 2, "b": 3})
        self.assertEqual(result["response"], {"sum": 5, "requestId": result["request_id"],
                                              "functionName": item["name"], "timeLeft": True})
        self.assertTrue(any("node handled" in line for line in result["logs"]), result["logs"])
        # A thrown error: the client's error document, its type from the exception.
        r = self.wisp.invoke(item["id"], {"fail": "bad input"})
        self.assertEqual(r.json["status"], "error", r)
        self.assertEqual(r.json["response"]["errorType"], "TypeError", r)
        self.assertEqual(r.json["response"]["errorMessage"], "bad input", r)
        r = self.lambda_invoke(item["name"], {"a": 1, "b": 1})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["sum"], 2, r)

    def test_an_init_error_reaches_the_caller(self):
        binary = go_binary()
        item = self.deploy_failure({"bootstrap": (binary, 0o755)},
                                   env={"FAIL_INIT": "the database is unreachable"})
        self.assertIn("Custom.InitFailed: the database is unreachable", item["error"], item)
        r = self.wisp.request("GET", f"/2015-03-31/functions/{item['name']}/configuration")
        self.assertEqual(r.json["State"], "Failed", r)
        self.assertIn("the database is unreachable", r.json["StateReason"], r)
        # A call is refused with the reason, on the Lambda API as the SDKs parse errors.
        r = self.lambda_invoke(item["name"], {})
        self.assertEqual(r.status, 409, r)
        self.assertEqual(r.headers.get("x-amzn-errortype"), "ResourceConflictException", r)
        self.assertIn("Custom.InitFailed: the database is unreachable", r.json["Message"], r)

    def test_a_bootstrap_that_exits_or_hangs_in_init(self):
        item = self.deploy_failure(
            {"bootstrap": ("#!/bin/sh\necho 'cannot start'\nexit 3\n", 0o755)})
        self.assertIn("Runtime.ExitError: runtime exited with code 3", item["error"], item)
        # One that never asks for work: the init timeout (the fixture's wispd: 10 s) ends it.
        item = self.deploy_failure({"bootstrap": ("#!/bin/sh\nexec sleep 1000\n", 0o755)})
        self.assertIn("Runtime.InitTimeout: the runtime did not become ready", item["error"], item)

    def test_a_missing_or_unusable_bootstrap_is_refused_clearly(self):
        item = self.deploy_failure({"main.sh": ("#!/bin/sh\n", 0o755)})
        self.assertIn("no bootstrap at its root", item["error"], item)
        item = self.deploy_failure({"bootstrap": ("#!/bin/sh\n", 0o644)})
        self.assertIn("bootstrap is not executable", item["error"], item)
        item = self.deploy_failure({"bootstrap/readme": "a folder, not a program"})
        self.assertIn("not a file", item["error"], item)
        # Executable bits, but nothing the kernel can run, or a script whose interpreter the
        # sandbox does not have: said in words, not only the kernel's errno.
        item = self.deploy_failure({"bootstrap": ("just words\n", 0o755)})
        self.assertIn("execve /var/task/bootstrap: Exec format error", item["error"], item)
        self.assertIn("#! line", item["error"], item)
        item = self.deploy_failure({"bootstrap": ("#!/no/such/shell\n", 0o755)})
        self.assertIn("the interpreter on its #! line", item["error"], item)
        # A single source file has no mode bits: a custom runtime takes a zip.
        r = self.wisp.request("POST", "/v1/functions", {
            "name": self.unique_name(), "runtime": "provided.al2023",
            "code": "#!/bin/sh\n"})
        self.assertEqual(r.status, 400, r)
        self.assertIn("zip", r.json["error"], r)
        # No program style: the bootstrap is the loop.
        r = self.wisp.request("POST", "/v1/functions", {
            "name": self.unique_name(), "runtime": "provided", "style": "program",
            "zip": base64.b64encode(make_zip({"bootstrap": ("#!/bin/sh\n", 0o755)})).decode()})
        self.assertEqual(r.status, 400, r)
        self.assertIn("bootstrap", r.json["error"], r)


if __name__ == "__main__":
    unittest.main()
