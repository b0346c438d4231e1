"""The AWS Lambda control-plane API beside /v1: the paths, JSON, headers and errors the AWS SDKs
and the AWS CLI use, over the same functions /v1 sees. Driven twice: with plain HTTP (every
header and field checked) and with Debian's AWS CLI (a real client parses what Wisp answers)."""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.parse

from wisp_fixture import WispTestCase

ECHO_NODE = """
exports.handler = async (event, context) => {
  console.log('log line for', JSON.stringify(event));
  if (event.fail) throw new Error('asked to fail');
  return {event, version: context.functionVersion,
          clientContext: context.clientContext || null};
};
"""
SLOW_PYTHON = "import time\ndef handler(event, context):\n    time.sleep(5)\n    return 1\n"


def lambda_path(name, suffix=""):
    return "/2015-03-31/functions/" + urllib.parse.quote(name, safe="") + suffix


class LambdaApiTest(WispTestCase):
    server_env = {"WISP_REGION": "eu-central-1", "WISP_ACCOUNT_ID": "123456789012"}

    def create_v1(self, code=ECHO_NODE, runtime="node", **spec):
        name = spec.pop("name", None) or self.unique_name("lam")
        fid = self.deploy(code, runtime=runtime, name=name, **spec)
        return fid, name

    def lambda_request(self, method, path, body=None, headers=None, raw=None):
        return self.wisp.request(method, path, body=body, headers=headers, raw=raw)

    def assert_lambda_error(self, r, status, error_type):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.headers.get("x-amzn-errortype"), error_type, r)
        self.assertIn("message", r.json)
        self.assertIn("Message", r.json)
        self.assertTrue(r.headers.get("x-amzn-requestid"))

    def test_a_v1_function_is_seen_by_name_partial_arn_and_arn(self):
        fid, name = self.create_v1(timeout_seconds=7, memory_mb=256, env={"K": "V"})
        arn = f"arn:aws:lambda:eu-central-1:123456789012:function:{name}"
        for ref in (name, f"123456789012:function:{name}", arn, f"{name}:$LATEST"):
            with self.subTest(ref=ref):
                r = self.lambda_request("GET", lambda_path(ref))
                self.assertEqual(r.status, 200, r)
                c = r.json["Configuration"]
                self.assertEqual(c["FunctionName"], name)
                self.assertEqual(c["FunctionArn"], arn)
                self.assertEqual(c["Timeout"], 7)
                self.assertEqual(c["MemorySize"], 256)
                self.assertEqual(c["Environment"], {"Variables": {"K": "V"}})
                self.assertEqual(c["State"], "Active")
                self.assertEqual(c["LastUpdateStatus"], "Successful")
                self.assertEqual(c["PackageType"], "Zip")
                self.assertTrue(c["Runtime"].startswith("nodejs"), c)
                self.assertEqual(c["Handler"], "index.handler")
        r = self.lambda_request("GET", lambda_path(name, "/configuration"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["FunctionName"], name)
        # Another region's or account's function is not here.
        other = f"arn:aws:lambda:us-west-2:123456789012:function:{name}"
        self.assert_lambda_error(self.lambda_request("GET", lambda_path(other)), 404,
                                 "ResourceNotFoundException")

    def test_errors_are_shaped_as_the_sdks_parse_them(self):
        self.assert_lambda_error(self.lambda_request("GET", lambda_path("no-such-fn")), 404,
                                 "ResourceNotFoundException")
        self.assert_lambda_error(self.lambda_request("GET", lambda_path("a:b:c")), 400,
                                 "InvalidParameterValueException")
        self.assert_lambda_error(
            self.lambda_request("GET", "/2015-03-31/functions/?MaxItems=0"), 400,
            "InvalidParameterValueException")
        self.assert_lambda_error(
            self.lambda_request("GET", "/2015-03-31/functions/?Bogus=1"), 400,
            "InvalidParameterValueException")
        _, name = self.create_v1()
        r = self.lambda_request("POST", lambda_path(name, "/invocations"), raw=b"{not json")
        self.assert_lambda_error(r, 400, "InvalidRequestContentException")
        r = self.lambda_request("PUT", lambda_path(name, "/configuration"),
                                {"VpcConfig": {"SubnetIds": []}})
        self.assert_lambda_error(r, 400, "InvalidParameterValueException")
        self.assertIn("VpcConfig", r.json["message"])
        r = self.lambda_request("PUT", lambda_path(name, "/configuration"), {"Timeout": 0})
        self.assert_lambda_error(r, 400, "InvalidParameterValueException")
        r = self.lambda_request("POST", lambda_path(name, "/invocations"),
                                headers={"X-Amz-Invocation-Type": "Sometimes"}, raw=b"{}")
        self.assert_lambda_error(r, 400, "InvalidParameterValueException")
        r = self.lambda_request("GET", lambda_path(name + ":99"))
        self.assert_lambda_error(r, 404, "ResourceNotFoundException")

    def test_list_pages_with_marker_and_max_items(self):
        names = sorted(self.create_v1(name=self.unique_name("page"))[1] for _ in range(5))
        seen = []
        marker = None
        pages = 0
        while True:
            path = "/2015-03-31/functions/?MaxItems=2"
            if marker:
                path += "&Marker=" + urllib.parse.quote(marker, safe="")
            r = self.lambda_request("GET", path)
            self.assertEqual(r.status, 200, r)
            self.assertLessEqual(len(r.json["Functions"]), 2)
            seen += [f["FunctionName"] for f in r.json["Functions"]]
            pages += 1
            marker = r.json.get("NextMarker")
            if not marker:
                break
        self.assertEqual(seen, sorted(seen))
        self.assertEqual(len(seen), len(set(seen)))
        for name in names:
            self.assertIn(name, seen)
        self.assertGreaterEqual(pages, 3)

    def test_invoke_sync_event_dryrun_tail_and_function_error(self):
        _, name = self.create_v1()
        path = lambda_path(name, "/invocations")
        # The body is the event whatever the Content-Type says.
        for content_type in (None, "application/json", "binary/octet-stream",
                             "application/octet-stream"):
            with self.subTest(content_type=content_type):
                headers = {"Content-Type": content_type} if content_type else {}
                r = self.lambda_request("POST", path, headers=headers, raw=b'{"a": 1}')
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json["event"], {"a": 1})
                self.assertEqual(r.headers.get("x-amz-executed-version"), "$LATEST")
                self.assertNotIn("x-amz-function-error", r.headers)
        # No body at all is the event {}.
        r = self.lambda_request("POST", path)
        self.assertEqual(r.json["event"], {})
        # Tail: the call's log, base64, with START, END and REPORT lines.
        r = self.lambda_request("POST", path, headers={"X-Amz-Log-Type": "Tail"},
                                raw=b'{"tail": true}')
        log = base64.b64decode(r.headers["x-amz-log-result"]).decode()
        self.assertIn("log line for", log)
        self.assertIn("START RequestId:", log)
        self.assertIn("END RequestId:", log)
        self.assertIn("REPORT RequestId:", log)
        self.assertIn("Max Memory Used:", log)
        self.assertLessEqual(len(log.encode()), 4096)
        # The function's error: 200, X-Amz-Function-Error and Lambda's error document.
        r = self.lambda_request("POST", path, raw=b'{"fail": true}')
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("x-amz-function-error"), "Unhandled")
        self.assertEqual(r.json["errorType"], "Error")
        self.assertEqual(r.json["errorMessage"], "asked to fail")
        self.assertIn("stackTrace", r.json)
        # The client context reaches the function.
        context = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
        r = self.lambda_request("POST", path, headers={"X-Amz-Client-Context": context},
                                raw=b"{}")
        self.assertEqual(r.json["clientContext"]["custom"], {"k": "v"})
        r = self.lambda_request("POST", path, headers={"X-Amz-Client-Context": "%%%"}, raw=b"{}")
        self.assert_lambda_error(r, 400, "InvalidRequestContentException")
        # DryRun: 204, nothing runs.
        r = self.lambda_request("POST", path, headers={"X-Amz-Invocation-Type": "DryRun"},
                                raw=b'{"dry": 1}')
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.body, b"")
        # Event: 202 onto the durable queue, and it runs.
        r = self.lambda_request("POST", path, headers={"X-Amz-Invocation-Type": "Event"},
                                raw=b'{"queued": 1}')
        self.assertEqual(r.status, 202, r)
        invocation_id = r.headers["x-amzn-requestid"]
        deadline = time.monotonic() + 30
        while True:
            item = self.wisp.request("GET", f"/v1/invocations/{invocation_id}").json
            if item and item.get("item", {}).get("status") == "success":
                break
            self.assertLess(time.monotonic(), deadline, item)
            time.sleep(0.05)

    def test_timeout_is_a_function_error(self):
        _, name = self.create_v1(code=SLOW_PYTHON, runtime="python", timeout_seconds=1)
        r = self.lambda_request("POST", lambda_path(name, "/invocations"), raw=b"{}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("x-amz-function-error"), "Unhandled")
        self.assertIn("timed out", r.json["errorMessage"])

    def test_update_configuration_and_delete(self):
        fid, name = self.create_v1()
        r = self.lambda_request("PUT", lambda_path(name, "/configuration"),
                                {"Timeout": 9, "MemorySize": 512,
                                 "Environment": {"Variables": {"X": "1"}}})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["Timeout"], 9)
        self.assertEqual(r.json["MemorySize"], 512)
        self.assertEqual(r.json["Environment"]["Variables"], {"X": "1"})
        item = self.wisp.function(fid)  # /v1 sees the same function changed
        self.assertEqual(item["timeout_seconds"], 9)
        self.assertEqual(item["memory_mb"], 512)
        r = self.lambda_request("DELETE", lambda_path(name))
        self.assertEqual(r.status, 204, r)
        self.assertEqual(self.wisp.request("GET", f"/v1/functions/{fid}").status, 404)
        self.assert_lambda_error(self.lambda_request("DELETE", lambda_path(name)), 404,
                                 "ResourceNotFoundException")

    def test_versions_and_aliases_as_lambda_shapes_them(self):
        fid, name = self.create_v1()
        arn = f"arn:aws:lambda:eu-central-1:123456789012:function:{name}"
        r = self.lambda_request("POST", lambda_path(name, "/versions"), {"Description": "one"})
        self.assertEqual(r.status, 201, r)
        self.assertEqual((r.json["Version"], r.json["FunctionArn"]), ("1", arn + ":1"))
        self.assertEqual(r.json["Description"], "one")
        self.assertEqual(r.json["State"], "Active")
        stale = self.lambda_request("POST", lambda_path(name, "/versions"),
                                    {"CodeSha256": "not-the-code"})
        self.assert_lambda_error(stale, 412, "PreconditionFailedException")
        page = self.lambda_request("GET", lambda_path(name, "/versions?MaxItems=1"))
        self.assertEqual([v["Version"] for v in page.json["Versions"]], ["$LATEST"])
        marker = urllib.parse.quote(page.json["NextMarker"])
        rest = self.lambda_request("GET", lambda_path(name, f"/versions?Marker={marker}"))
        self.assertEqual([v["Version"] for v in rest.json["Versions"]], ["1"])
        self.assertNotIn("NextMarker", rest.json)

        alias = self.lambda_request("POST", lambda_path(name, "/aliases"),
                                    {"Name": "live", "FunctionVersion": "1"})
        self.assertEqual(alias.status, 201, alias)
        self.assertEqual(alias.json["AliasArn"], arn + ":live")
        self.assertTrue(alias.json["RevisionId"])
        for ref, query in ((f"{name}:live", ""), (name, "?Qualifier=live"), (f"{name}:1", "")):
            r = self.lambda_request("POST", lambda_path(ref, "/invocations" + query), {})
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.headers.get("x-amz-executed-version"), "1", ref)
        queued = self.lambda_request("POST", lambda_path(f"{name}:live", "/invocations"), {},
                                     {"X-Amz-Invocation-Type": "Event"})
        self.assertEqual(queued.status, 202, queued)
        self.assert_lambda_error(
            self.lambda_request("POST", lambda_path(f"{name}:nope", "/invocations"), {},
                                {"X-Amz-Invocation-Type": "Event"}),
            404, "ResourceNotFoundException")
        got = self.lambda_request("GET", lambda_path(name) + "?Qualifier=live")
        self.assertEqual(got.json["Configuration"]["Version"], "1")
        self.assert_lambda_error(self.lambda_request("GET", lambda_path(f"{name}:nope")), 404,
                                 "ResourceNotFoundException")
        self.assert_lambda_error(
            self.lambda_request("POST", lambda_path(name, "/aliases"),
                                {"Name": "live", "FunctionVersion": "1"}),
            409, "ResourceConflictException")
        self.assert_lambda_error(
            self.lambda_request("POST", lambda_path(name, "/aliases"),
                                {"Name": "x", "FunctionVersion": "7"}),
            404, "ResourceNotFoundException")
        self.assert_lambda_error(
            self.lambda_request("PUT", lambda_path(name, "/aliases/live"),
                                {"FunctionVersion": "1", "RevisionId": "stale"}),
            412, "PreconditionFailedException")
        self.assert_lambda_error(self.lambda_request("DELETE", lambda_path(f"{name}:1")), 409,
                                 "ResourceConflictException")
        self.assertEqual(self.lambda_request("DELETE", lambda_path(name, "/aliases/live")).status,
                         204)
        self.assertEqual(self.lambda_request("DELETE", lambda_path(f"{name}:1")).status, 204)
        # The function itself stays.
        self.assertEqual(self.lambda_request("GET", lambda_path(name)).status, 200)

    def test_account_settings(self):
        r = self.lambda_request("GET", "/2016-08-19/account-settings/")
        self.assertEqual(r.status, 200, r)
        self.assertGreater(r.json["AccountLimit"]["ConcurrentExecutions"], 0)
        self.assertGreaterEqual(r.json["AccountUsage"]["FunctionCount"], 0)


AWS_CLI = "/usr/bin/aws"


@unittest.skipUnless(os.access(AWS_CLI, os.X_OK),
                     "Debian's awscli is not installed (scripts/install-deps installs it)")
class AwsCliTest(WispTestCase):
    """The AWS CLI, unchanged, pointed at wispd: it signs, sends and parses as it does for AWS."""

    def setUp(self):
        self.home = tempfile.mkdtemp(prefix="wisp-awscli-")
        self.addCleanup(shutil.rmtree, self.home, True)

    def aws(self, *args, check=True):
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": self.home,
            "AWS_ACCESS_KEY_ID": "WKTESTKEYNOTCHECKED0",
            "AWS_SECRET_ACCESS_KEY": "not-checked-while-auth-is-off",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_PAGER": "",
            "AWS_CONFIG_FILE": os.path.join(self.home, "config"),
            "AWS_SHARED_CREDENTIALS_FILE": os.path.join(self.home, "credentials"),
        }
        argv = [AWS_CLI, "--endpoint-url", f"http://127.0.0.1:{self.wisp.port}",
                "--output", "json", "--cli-read-timeout", "60", "lambda", *args]
        p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        if check:
            self.assertEqual(p.returncode, 0, f"{argv}\n{p.stdout}\n{p.stderr}")
        return p

    def test_get_list_invoke_update_delete(self):
        name = self.unique_name("cli")
        fid = self.deploy(ECHO_NODE, runtime="node", name=name)
        got = json.loads(self.aws("get-function", "--function-name", name).stdout)
        self.assertEqual(got["Configuration"]["FunctionName"], name)
        listed = json.loads(self.aws("list-functions", "--max-items", "1000").stdout)
        self.assertIn(name, [f["FunctionName"] for f in listed["Functions"]])
        out = os.path.join(self.home, "out.json")
        result = json.loads(self.aws("invoke", "--function-name", name, "--payload",
                                     base64.b64encode(b'{"x": 2}').decode(),
                                     "--log-type", "Tail", out).stdout)
        self.assertEqual(result["StatusCode"], 200)
        self.assertEqual(result["ExecutedVersion"], "$LATEST")
        self.assertIn("END RequestId", base64.b64decode(result["LogResult"]).decode())
        with open(out) as f:
            self.assertEqual(json.load(f)["event"], {"x": 2})
        failed = json.loads(self.aws("invoke", "--function-name", name, "--payload",
                                     base64.b64encode(b'{"fail": true}').decode(), out).stdout)
        self.assertEqual(failed["FunctionError"], "Unhandled")
        queued = json.loads(self.aws("invoke", "--function-name", name, "--invocation-type",
                                     "Event", "--payload", base64.b64encode(b"{}").decode(),
                                     out).stdout)
        self.assertEqual(queued["StatusCode"], 202)
        updated = json.loads(self.aws("update-function-configuration", "--function-name", name,
                                      "--timeout", "11").stdout)
        self.assertEqual(updated["Timeout"], 11)
        missing = self.aws("get-function", "--function-name", "no-such-function", check=False)
        self.assertNotEqual(missing.returncode, 0)
        self.assertIn("ResourceNotFoundException", missing.stderr)
        self.aws("delete-function", "--function-name", name)
        self.assertEqual(self.wisp.request("GET", f"/v1/functions/{fid}").status, 404)

    def test_versions_aliases_and_tags(self):
        name = self.unique_name("cliv")
        fid = self.deploy("exports.handler = async () => ({v: 'one'});", runtime="node",
                          name=name)
        v1 = json.loads(self.aws("publish-version", "--function-name", name,
                                 "--description", "first").stdout)
        self.assertEqual(v1["Version"], "1")
        self.assertTrue(v1["FunctionArn"].endswith(f":function:{name}:1"), v1)
        self.assertEqual(v1["Description"], "first")
        r = self.wisp.request("PUT", f"/v1/functions/{fid}",
                              {"code": "exports.handler = async () => ({v: 'two'});"})
        self.assertEqual(r.status, 200, r)
        v2 = json.loads(self.aws("publish-version", "--function-name", name).stdout)
        self.assertEqual(v2["Version"], "2")
        listed = json.loads(self.aws("list-versions-by-function", "--function-name",
                                     name).stdout)
        self.assertEqual([v["Version"] for v in listed["Versions"]], ["$LATEST", "1", "2"])
        first_page = json.loads(self.aws("list-versions-by-function", "--function-name", name,
                                         "--max-items", "2").stdout)
        self.assertEqual([v["Version"] for v in first_page["Versions"]], ["$LATEST", "1"])
        rest = json.loads(self.aws("list-versions-by-function", "--function-name", name,
                                   "--starting-token", first_page["NextToken"]).stdout)
        self.assertEqual([v["Version"] for v in rest["Versions"]], ["2"])

        alias = json.loads(self.aws(
            "create-alias", "--function-name", name, "--name", "live", "--function-version", "1",
            "--routing-config", '{"AdditionalVersionWeights": {"2": 0.5}}').stdout)
        self.assertEqual(alias["FunctionVersion"], "1")
        self.assertEqual(alias["RoutingConfig"]["AdditionalVersionWeights"], {"2": 0.5})
        out = os.path.join(self.home, "out.json")
        executed = set()
        for _ in range(20):  # both sides at 0.5: a miss has odds of one in a million
            result = json.loads(self.aws("invoke", "--function-name", name, "--qualifier", "live",
                                         out).stdout)
            with open(out) as f:
                v = json.load(f)["v"]
            self.assertEqual(result["ExecutedVersion"], {"one": "1", "two": "2"}[v])
            executed.add(result["ExecutedVersion"])
        self.assertEqual(executed, {"1", "2"})
        # Promote the canary: the alias moves to 2 and routes nothing elsewhere.
        moved = json.loads(self.aws(
            "update-alias", "--function-name", name, "--name", "live", "--function-version", "2",
            "--routing-config", '{"AdditionalVersionWeights": {}}').stdout)
        self.assertEqual(moved["FunctionVersion"], "2")
        self.assertNotIn("RoutingConfig", moved)
        result = json.loads(self.aws("invoke", "--function-name", f"{name}:live", out).stdout)
        self.assertEqual(result["ExecutedVersion"], "2")
        got = json.loads(self.aws("get-alias", "--function-name", name, "--name", "live").stdout)
        self.assertEqual(got["FunctionVersion"], "2")
        aliases = json.loads(self.aws("list-aliases", "--function-name", name).stdout)
        self.assertEqual([a["Name"] for a in aliases["Aliases"]], ["live"])
        config = json.loads(self.aws("get-function-configuration", "--function-name", name,
                                     "--qualifier", "1").stdout)
        self.assertEqual(config["Version"], "1")
        # A version an alias points at cannot be deleted; once free it can.
        held = self.aws("delete-function", "--function-name", name, "--qualifier", "2",
                        check=False)
        self.assertNotEqual(held.returncode, 0)
        self.assertIn("ResourceConflictException", held.stderr)
        self.aws("delete-alias", "--function-name", name, "--name", "live")
        self.aws("delete-function", "--function-name", name, "--qualifier", "2")
        gone = self.aws("get-function", "--function-name", name, "--qualifier", "2", check=False)
        self.assertIn("ResourceNotFoundException", gone.stderr)

        # Tags and Description, stored in the function's record.
        arn = json.loads(self.aws("get-function", "--function-name", name).stdout)[
            "Configuration"]["FunctionArn"]
        self.aws("tag-resource", "--resource", arn, "--tags", "team=core,env=prod")
        tags = json.loads(self.aws("list-tags", "--resource", arn).stdout)
        self.assertEqual(tags["Tags"], {"team": "core", "env": "prod"})
        self.aws("untag-resource", "--resource", arn, "--tag-keys", "env")
        self.assertEqual(json.loads(self.aws("list-tags", "--resource", arn).stdout)["Tags"],
                         {"team": "core"})
        self.assertEqual(json.loads(self.aws("get-function", "--function-name", name).stdout)[
            "Tags"], {"team": "core"})
        described = json.loads(self.aws("update-function-configuration", "--function-name", name,
                                        "--description", "the echo").stdout)
        self.assertEqual(described["Description"], "the echo")
        self.assertEqual(json.loads(self.aws("get-function-configuration", "--function-name",
                                             name).stdout)["Description"], "the echo")


if __name__ == "__main__":
    unittest.main()
