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
import zipfile
import io

import lambda_packages
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

    def test_a_package_of_lambdas_50_mb_is_taken_whole_and_one_byte_more_is_not(self):
        # Lambda's limit at its default: a request body of ~67 MB of base64, over the server's
        # limit for every other route.
        limit = 50 << 20
        filler = os.urandom(limit - (64 << 10))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr("index.js", "exports.handler = async () => 'big';\n")
            archive.writestr("node_modules/filler/blob.bin", filler)
        package = out.getvalue()
        self.assertLessEqual(len(package), limit)
        name = self.unique_name("big")
        body = {"FunctionName": name, "Runtime": "nodejs20.x", "Handler": "index.handler",
                "Role": "r", "Code": {"ZipFile": base64.b64encode(package).decode()}}
        r = self.lambda_request("POST", "/2015-03-31/functions", body)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["CodeSize"], len(package))
        body["FunctionName"] = self.unique_name("over")
        body["Code"]["ZipFile"] = base64.b64encode(b"\0" * (limit + 1)).decode()
        self.assert_lambda_error(self.lambda_request("POST", "/2015-03-31/functions", body),
                                 413, "RequestTooLargeException")
        self.assertEqual(self.lambda_request("DELETE", lambda_path(name)).status, 204)

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
        # An alias's configuration names the alias in its ARN, as Lambda's does.
        self.assertEqual(got.json["Configuration"]["FunctionArn"], arn + ":live")
        # ListFunctions with FunctionVersion=ALL: $LATEST and each version, a page at a time.
        seen, marker = [], None
        for _ in range(100):
            query = "?FunctionVersion=ALL&MaxItems=1" + (
                f"&Marker={urllib.parse.quote(marker)}" if marker else "")
            page = self.lambda_request("GET", "/2015-03-31/functions" + query)
            self.assertEqual(page.status, 200, page)
            seen += [(c["FunctionName"], c["Version"], c["FunctionArn"])
                     for c in page.json["Functions"]]
            marker = page.json.get("NextMarker")
            if not marker:
                break
        self.assertEqual([(v, a) for n, v, a in seen if n == name],
                         [("$LATEST", arn), ("1", arn + ":1")])
        self.assertEqual(len(seen), len(set(seen)))
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


class LambdaCodeTest(WispTestCase):
    """CreateFunction from a zip, UpdateFunctionCode, and the code's download, over plain HTTP
    (every field and header checked). Small package limits keep the over-limit packages small."""

    server_env = {"WISP_CODE_MAX_ZIP_MB": "2", "WISP_CODE_MAX_UNZIPPED_MB": "4",
                  "WISP_CODE_MAX_ZIP_ENTRIES": "300"}

    def lambda_request(self, method, path, body=None, headers=None, raw=None):
        return self.wisp.request(method, path, body=body, headers=headers, raw=raw)

    def assert_lambda_error(self, r, status, error_type, mentions=None):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.headers.get("x-amzn-errortype"), error_type, r)
        if mentions:
            self.assertRegex(r.json["message"], mentions)

    def create_body(self, name, zip_data, **extra):
        body = {"FunctionName": name, "Runtime": "nodejs20.x",
                "Handler": "src/handlers/main.handler", "Role": "arn:aws:iam::1:role/r",
                "Code": {"ZipFile": base64.b64encode(zip_data).decode()},
                "Environment": {"Variables": {"GREETING": "hey"}}}
        body.update(extra)
        return body

    def wait_active(self, name):
        deadline = time.monotonic() + 30
        while True:
            r = self.lambda_request("GET", lambda_path(name))
            state = r.json["Configuration"]["State"]
            if state != "Pending":
                return r
            self.assertLess(time.monotonic(), deadline, r)
            time.sleep(0.05)

    def download(self, location):
        url = urllib.parse.urlsplit(location)
        self.assertEqual(url.netloc, f"127.0.0.1:{self.wisp.port}")
        r = self.lambda_request("GET", url.path + (f"?{url.query}" if url.query else ""))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("content-type"), "application/zip")
        return zipfile.ZipFile(io.BytesIO(r.body))

    def drafts(self):
        return os.listdir(os.path.join(self.wisp.data_dir, "code", ".drafts"))

    def test_create_from_a_zip_is_pending_then_active_and_its_code_downloads(self):
        name = self.unique_name("zip")
        package = lambda_packages.app_zip(1)
        r = self.lambda_request("POST", "/2015-03-31/functions", self.create_body(name, package))
        self.assertEqual(r.status, 201, r)
        self.assertIn(r.json["State"], ("Pending", "Active"))
        self.assertEqual(r.json["CodeSha256"], lambda_packages.lambda_sha256(package))
        self.assertEqual(r.json["CodeSize"], len(package))
        self.assertEqual(r.json["Timeout"], 3)  # Lambda's defaults on this API
        self.assertEqual(r.json["MemorySize"], 128)
        got = self.wait_active(name)
        self.assertEqual(got.json["Configuration"]["State"], "Active", got)
        self.assertEqual(got.json["Configuration"]["LastUpdateStatus"], "Successful")
        r = self.lambda_request("POST", lambda_path(name, "/invocations"), raw=b'{"who": "zip"}')
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["message"], "hey zip")
        self.assertEqual(r.json["padded"], "00042")
        # The download holds the same files, folders and link.
        self.assertEqual(got.json["Code"]["RepositoryType"], "S3")
        downloaded = self.download(got.json["Code"]["Location"])
        uploaded = zipfile.ZipFile(io.BytesIO(package))
        files = lambda z: sorted(n for n in z.namelist() if not n.endswith("/"))
        self.assertEqual(files(downloaded), files(uploaded))
        for n in files(uploaded):
            self.assertEqual(downloaded.read(n), uploaded.read(n), n)
        link = downloaded.getinfo("node_modules/.bin/tiny-pad")
        self.assertEqual((link.external_attr >> 16) & 0o170000, 0o120000)  # still a link
        # /v1 sees the package's figures too.
        listed = self.wisp.request("GET", "/v1/functions").json["items"]
        item = next(f for f in listed if f["name"] == name)
        self.assertEqual(item["code_sha256"], lambda_packages.lambda_sha256(package))
        # The account's code size counts packages by their zips.
        usage = self.lambda_request("GET", "/2016-08-19/account-settings/").json["AccountUsage"]
        self.assertGreaterEqual(usage["TotalCodeSize"], len(package))

    def test_a_v1_single_file_function_shows_its_file_and_downloads_as_a_zip(self):
        name = self.unique_name("one")
        self.deploy(ECHO_NODE, runtime="node", name=name)
        got = self.lambda_request("GET", lambda_path(name)).json
        source = ECHO_NODE.encode()
        self.assertEqual(got["Configuration"]["CodeSha256"], lambda_packages.lambda_sha256(source))
        self.assertEqual(got["Configuration"]["CodeSize"], len(source))
        downloaded = self.download(got["Code"]["Location"])
        self.assertEqual([downloaded.read(n) for n in downloaded.namelist()], [source])

    def test_update_function_code_dry_run_revision_and_a_failed_load(self):
        name = self.unique_name("upd")
        v1 = lambda_packages.app_zip(1)
        self.assertEqual(self.lambda_request("POST", "/2015-03-31/functions",
                                             self.create_body(name, v1)).status, 201)
        revision = self.wait_active(name).json["Configuration"]["RevisionId"]
        path = lambda_path(name, "/code")
        v2 = lambda_packages.app_zip(2)
        zip_field = base64.b64encode(v2).decode()
        r = self.lambda_request("PUT", path, {"ZipFile": zip_field, "DryRun": True})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["CodeSha256"], lambda_packages.lambda_sha256(v1))
        slip, reason = lambda_packages.bad_zips(4 << 20, 300)["zip-slip.zip"]
        self.assert_lambda_error(
            self.lambda_request("PUT", path, {"ZipFile": base64.b64encode(slip).decode(),
                                              "DryRun": True}),
            400, "InvalidZipFileException", reason)
        self.assertEqual(self.drafts(), [])
        self.assert_lambda_error(
            self.lambda_request("PUT", path, {"ZipFile": zip_field, "RevisionId": "stale"}),
            412, "PreconditionFailedException")
        self.assert_lambda_error(
            self.lambda_request("PUT", lambda_path(name + ":1", "/code"), {"ZipFile": zip_field}),
            400, "InvalidParameterValueException")
        self.assert_lambda_error(
            self.lambda_request("PUT", path, {"ZipFile": zip_field, "Publish": True,
                                              "DryRun": True}),
            400, "InvalidParameterValueException", "Publish")
        r = self.lambda_request("PUT", path, {"ZipFile": zip_field, "RevisionId": revision})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["CodeSha256"], lambda_packages.lambda_sha256(v2))
        self.assertEqual(r.json["CodeSize"], len(v2))
        self.assertEqual(r.json["LastUpdateStatus"], "Successful")
        invoke = lambda: self.lambda_request("POST", lambda_path(name, "/invocations"), raw=b"{}")
        self.assertEqual(invoke().json["version"], 2)
        # Code that does not load: the update says Failed, the code before it keeps serving.
        broken = lambda_packages.zip_bytes({"src/handlers/main.js": "this is not javascript {"})
        r = self.lambda_request("PUT", path, {"ZipFile": base64.b64encode(broken).decode()})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["State"], "Active")
        self.assertEqual(r.json["LastUpdateStatus"], "Failed")
        self.assertTrue(r.json["LastUpdateStatusReason"])
        self.assertEqual(invoke().json["version"], 2)

    def test_a_first_deploy_that_fails_is_failed_with_a_reason(self):
        name = self.unique_name("bad")
        broken = lambda_packages.zip_bytes({"src/handlers/main.js": "syntax error here {"})
        r = self.lambda_request("POST", "/2015-03-31/functions", self.create_body(name, broken))
        self.assertEqual(r.status, 201, r)
        got = self.wait_active(name).json["Configuration"]
        self.assertEqual(got["State"], "Failed", got)
        self.assertTrue(got["StateReason"])

    def test_create_errors(self):
        name = self.unique_name("err")
        package = lambda_packages.app_zip(1)
        self.assertEqual(self.lambda_request("POST", "/2015-03-31/functions",
                                             self.create_body(name, package)).status, 201)
        self.assert_lambda_error(self.lambda_request("POST", "/2015-03-31/functions",
                                                     self.create_body(name, package)),
                                 409, "ResourceConflictException")
        self.assert_lambda_error(self.lambda_request("POST", "/2015-03-31/functions",
                                                     raw=b'{"FunctionName": '),
                                 400, "InvalidRequestContentException")
        for extra, mentions in [({"PackageType": "Image"}, "PackageType"),
                                ({"Code": {"S3Bucket": "b", "S3Key": "k"}}, "S3Bucket"),
                                ({"Code": {"ZipFile": "@@@"}}, "ZipFile")]:
            with self.subTest(extra=extra):
                self.assert_lambda_error(
                    self.lambda_request("POST", "/2015-03-31/functions",
                                        self.create_body(self.unique_name("x"), package,
                                                         **extra)),
                    400, "InvalidParameterValueException", mentions)
        # Publish: the first deploy frozen as version 1, and that version is the answer.
        published_name = self.unique_name("pub")
        r = self.lambda_request("POST", "/2015-03-31/functions",
                                self.create_body(published_name, package, Publish=True))
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["Version"], "1")
        self.assertTrue(r.json["FunctionArn"].endswith(f":{published_name}:1"), r.json)
        r = self.lambda_request("POST", lambda_path(published_name + ":1", "/invocations"), {})
        self.assertEqual((r.status, r.headers.get("x-amz-executed-version")), (200, "1"), r)
        # Over the zipped limit within the request limit, then over the request limit.
        for size in (2 << 20) + 1, 4 << 20:
            with self.subTest(size=size):
                r = self.lambda_request("POST", "/2015-03-31/functions",
                                        self.create_body(self.unique_name("big"),
                                                         b"\0" * size))
                self.assert_lambda_error(r, 413, "RequestTooLargeException")
        # The larger limit is these routes' only: a /v1 body over the server's limit is refused.
        r = self.lambda_request("POST", "/v1/functions", raw=b" " * (7 << 20))
        self.assertEqual(r.status, 413, r)
        self.assertNotIn("x-amzn-errortype", r.headers)

    def test_every_malformed_package_is_refused_and_leaves_nothing(self):
        before = self.wisp.request("GET", "/v1/functions").json["items"]
        for file, (data, reason) in lambda_packages.bad_zips(4 << 20, 300).items():
            with self.subTest(package=file):
                name = self.unique_name("mal")
                r = self.lambda_request("POST", "/2015-03-31/functions",
                                        self.create_body(name, data))
                self.assert_lambda_error(r, 400, "InvalidZipFileException", reason)
                self.assert_lambda_error(self.lambda_request("GET", lambda_path(name)), 404,
                                         "ResourceNotFoundException")
                self.assertEqual(self.drafts(), [])
        self.assertEqual(self.wisp.request("GET", "/v1/functions").json["items"], before)


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

    def test_create_from_zip_wait_update_code_and_refusals(self):
        name = self.unique_name("clizip")
        package = os.path.join(self.home, "app.zip")
        with open(package, "wb") as f:
            f.write(lambda_packages.app_zip(1))
        created = json.loads(self.aws(
            "create-function", "--function-name", name, "--runtime", "nodejs20.x",
            "--handler", "src/handlers/main.handler", "--role", "arn:aws:iam::1:role/r",
            "--environment", "Variables={GREETING=cli}",
            "--zip-file", f"fileb://{package}").stdout)
        self.assertEqual(created["CodeSize"], os.path.getsize(package))
        self.aws("wait", "function-active", "--function-name", name)
        out = os.path.join(self.home, "out.json")
        self.aws("invoke", "--function-name", name, "--payload",
                 base64.b64encode(b'{"who": "aws"}').decode(), out)
        with open(out) as f:
            self.assertEqual(json.load(f)["message"], "cli aws")
        with open(package, "wb") as f:
            f.write(lambda_packages.app_zip(2))
        updated = json.loads(self.aws("update-function-code", "--function-name", name,
                                      "--zip-file", f"fileb://{package}").stdout)
        with open(package, "rb") as f:
            self.assertEqual(updated["CodeSha256"], lambda_packages.lambda_sha256(f.read()))
        self.aws("wait", "function-updated", "--function-name", name)
        self.aws("invoke", "--function-name", name, out)
        with open(out) as f:
            self.assertEqual(json.load(f)["version"], 2)
        got = json.loads(self.aws("get-function", "--function-name", name).stdout)
        self.assertTrue(got["Code"]["Location"].endswith(f"/functions/{name}/code-zip"))
        taken = self.aws("create-function", "--function-name", name, "--runtime", "nodejs20.x",
                         "--handler", "index.handler", "--role", "r",
                         "--zip-file", f"fileb://{package}", check=False)
        self.assertIn("ResourceConflictException", taken.stderr)
        bad = os.path.join(self.home, "bad.zip")
        with open(bad, "wb") as f:
            f.write(lambda_packages.bad_zips(250 << 20, 20000)["zip-slip.zip"][0])
        refused = self.aws("update-function-code", "--function-name", name,
                           "--zip-file", f"fileb://{bad}", check=False)
        self.assertIn("InvalidZipFileException", refused.stderr)
        self.aws("delete-function", "--function-name", name)


if __name__ == "__main__":
    unittest.main()
