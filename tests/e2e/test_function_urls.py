"""Function URLs (issue 15): /fn/{name}/... runs the function with Lambda's function-URL event
(payload format 2.0) and answers with what it returns, mapped as Lambda maps it; the URL's
configuration (auth, CORS) through /v1/functions/{id}/url and the Lambda API."""

import base64
import http.client
import json
import unittest

import wisp_fixture
from auth_support import AuthServer, send, signed_request

# Answers with the event it got, or with what the event asks for: the request's body, when
# it is JSON with a "respond" key, is returned as the function's result.
NODE_URL_FUNCTION = r"""
exports.handler = async (event) => {
  if (event.rawPath === '/binary') {
    return { statusCode: 200, headers: { 'content-type': 'application/octet-stream' },
             body: Buffer.from([0, 255, 1, 2]).toString('base64'), isBase64Encoded: true };
  }
  if (event.rawPath === '/respond') {
    const body = event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString() : event.body;
    return JSON.parse(body).respond;
  }
  if (event.rawPath === '/throw') throw new Error('it broke');
  return { statusCode: 200, headers: { 'content-type': 'application/json', 'x-echo': 'yes' },
           multiValueHeaders: { 'x-many': ['a', 'b'] },
           cookies: ['first=1; Path=/', 'second=2'], body: JSON.stringify(event) };
};
"""


def call(port, method, path, body=None, headers=None):
    """Status, the header list (repeated names kept) and the raw body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, [(k.lower(), v) for k, v in resp.getheaders()], resp.read()
    finally:
        conn.close()


def header(headers, name):
    values = [v for k, v in headers if k == name]
    return values[0] if len(values) == 1 else values or None


class FunctionUrlTest(wisp_fixture.WispTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()

    def make_function(self, url_config=None):
        name = self.unique_name("url")
        fid = self.deploy(NODE_URL_FUNCTION, name=name, handler="index.handler")
        if url_config is not None:
            r = self.wisp.request("PUT", f"/v1/functions/{fid}/url", url_config)
            self.assertEqual(r.status, 200, r)
        return fid, name

    def test_a_function_without_a_url_answers_404(self):
        fid, name = self.make_function()
        status, _, body = call(self.wisp.port, "GET", f"/fn/{name}/")
        self.assertEqual(status, 404, body)
        self.assertEqual(self.wisp.request("GET", f"/v1/functions/{fid}/url").status, 404)
        self.assertEqual(call(self.wisp.port, "GET", "/fn/no-such-function/")[0], 404)

    def test_every_method_path_query_header_and_cookie_reaches_the_function(self):
        _, name = self.make_function({"AuthType": "NONE"})
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]:
            status, headers, body = call(
                self.wisp.port, method, f"/fn/{name}/a/b?x=1&y=two%20words&x=3",
                body=b'{"k": "v"}' if method in ("POST", "PUT", "PATCH") else None,
                headers={"Content-Type": "application/json", "X-Custom": "hello",
                         "Cookie": "s=1; theme=dark", "User-Agent": "wisp-test"})
            self.assertEqual(status, 200, (method, body))
            if method == "HEAD":
                self.assertEqual(body, b"")
                continue
            event = json.loads(body)
            self.assertEqual(event["version"], "2.0")
            self.assertEqual(event["routeKey"], "$default")
            self.assertEqual(event["rawPath"], "/a/b")
            self.assertEqual(event["rawQueryString"], "x=1&y=two%20words&x=3")
            self.assertEqual(event["queryStringParameters"], {"x": "1,3", "y": "two words"})
            self.assertEqual(event["headers"]["x-custom"], "hello")
            self.assertNotIn("cookie", event["headers"])
            self.assertEqual(event["cookies"], ["s=1", "theme=dark"])
            http_context = event["requestContext"]["http"]
            self.assertEqual(http_context["method"], method)
            self.assertEqual(http_context["path"], "/a/b")
            self.assertEqual(http_context["sourceIp"], "127.0.0.1")
            self.assertEqual(http_context["userAgent"], "wisp-test")
            self.assertEqual(event["requestContext"]["stage"], "$default")
            self.assertIsInstance(event["requestContext"]["timeEpoch"], int)
            if method in ("POST", "PUT", "PATCH"):
                self.assertEqual(event["body"], '{"k": "v"}')
                self.assertFalse(event["isBase64Encoded"])
            else:
                self.assertNotIn("body", event)
            # The result's headers, multi-value headers and cookies come back.
            self.assertEqual(header(headers, "x-echo"), "yes")
            self.assertEqual(header(headers, "x-many"), ["a", "b"])
            self.assertEqual(header(headers, "set-cookie"), ["first=1; Path=/", "second=2"])
            self.assertEqual(header(headers, "content-type"), "application/json")

    def test_the_root_path_and_the_url_without_a_slash(self):
        _, name = self.make_function({"AuthType": "NONE"})
        for path in [f"/fn/{name}", f"/fn/{name}/"]:
            status, _, body = call(self.wisp.port, "GET", path)
            self.assertEqual(status, 200, body)
            self.assertEqual(json.loads(body)["rawPath"], "/")

    def test_binary_bodies_both_ways(self):
        _, name = self.make_function({"AuthType": "NONE"})
        payload = bytes([0, 1, 2, 200, 255])
        status, _, body = call(self.wisp.port, "POST", f"/fn/{name}/echo", body=payload,
                               headers={"Content-Type": "application/octet-stream"})
        self.assertEqual(status, 200, body)
        event = json.loads(body)
        self.assertTrue(event["isBase64Encoded"])
        self.assertEqual(base64.b64decode(event["body"]), payload)
        status, headers, body = call(self.wisp.port, "GET", f"/fn/{name}/binary")
        self.assertEqual(status, 200, body)
        self.assertEqual(body, bytes([0, 255, 1, 2]))
        self.assertEqual(header(headers, "content-type"), "application/octet-stream")

    def respond(self, name, result):
        return call(self.wisp.port, "POST", f"/fn/{name}/respond",
                    body=json.dumps({"respond": result}).encode(),
                    headers={"Content-Type": "application/json"})

    def test_a_result_without_status_code_is_a_json_200(self):
        _, name = self.make_function({"AuthType": "NONE"})
        for result in [{"message": "hi"}, "plain words", 42, [1, 2]]:
            status, headers, body = self.respond(name, result)
            self.assertEqual(status, 200, body)
            self.assertEqual(header(headers, "content-type"), "application/json")
            self.assertEqual(json.loads(body), result)

    def test_a_status_code_and_text_body(self):
        _, name = self.make_function({"AuthType": "NONE"})
        status, headers, body = self.respond(
            name, {"statusCode": 418, "headers": {"Content-Type": "text/plain"}, "body": "teapot"})
        self.assertEqual(status, 418)
        self.assertEqual(body, b"teapot")
        self.assertEqual(header(headers, "content-type"), "text/plain")

    def test_invalid_responses_are_502_with_a_reason(self):
        _, name = self.make_function({"AuthType": "NONE"})
        cases = [({"statusCode": "200"}, "statusCode"),
                 ({"statusCode": 1000}, "statusCode"),
                 ({"statusCode": 200, "body": {"not": "a string"}}, "body"),
                 ({"statusCode": 200, "body": "%%%", "isBase64Encoded": True}, "base64"),
                 ({"statusCode": 200, "headers": {"x": "a\r\nInjected: yes"}}, "line break")]
        for result, reason in cases:
            status, headers, body = self.respond(name, result)
            self.assertEqual(status, 502, (result, body))
            self.assertIn(reason, json.loads(body)["reason"], result)
            self.assertIsNone(header(headers, "injected"))
        status, headers, body = call(self.wisp.port, "GET", f"/fn/{name}/throw")
        self.assertEqual(status, 502, body)
        self.assertEqual(json.loads(body)["error"]["errorMessage"], "it broke")
        self.assertEqual(header(headers, "x-wisp-function-error"), "Unhandled")

    def test_a_timeout_is_504(self):
        name = self.unique_name("slow")
        fid = self.deploy("exports.handler = () => new Promise(r => setTimeout(r, 5000));",
                          name=name, handler="index.handler", timeout_seconds=1)
        r = self.wisp.request("PUT", f"/v1/functions/{fid}/url", {"AuthType": "NONE"})
        self.assertEqual(r.status, 200, r)
        status, headers, body = call(self.wisp.port, "GET", f"/fn/{name}/")
        self.assertEqual(status, 504, body)
        self.assertEqual(header(headers, "x-wisp-function-error"), "Timeout")
        self.assertIn("timed out", json.loads(body)["message"])

    def test_cors_preflight_and_response_headers(self):
        _, name = self.make_function({"AuthType": "NONE", "Cors": {
            "AllowOrigins": ["https://app.example"], "AllowMethods": ["GET", "POST"],
            "AllowHeaders": ["x-custom"], "ExposeHeaders": ["x-echo"], "MaxAge": 600}})
        status, headers, body = call(self.wisp.port, "OPTIONS", f"/fn/{name}/",
                                     headers={"Origin": "https://app.example",
                                              "Access-Control-Request-Method": "POST",
                                              "Access-Control-Request-Headers": "X-Custom"})
        self.assertEqual(status, 200, body)
        self.assertEqual(header(headers, "access-control-allow-origin"), "https://app.example")
        self.assertEqual(header(headers, "access-control-allow-methods"), "GET,POST")
        self.assertEqual(header(headers, "access-control-max-age"), "600")
        # Not the function's event: the preflight was answered without running it.
        self.assertNotIn(b"rawPath", body)
        status, headers, _ = call(self.wisp.port, "OPTIONS", f"/fn/{name}/",
                                  headers={"Origin": "https://evil.example",
                                           "Access-Control-Request-Method": "POST"})
        self.assertIsNone(header(headers, "access-control-allow-origin"))
        status, headers, _ = call(self.wisp.port, "GET", f"/fn/{name}/",
                                  headers={"Origin": "https://app.example"})
        self.assertEqual(status, 200)
        self.assertEqual(header(headers, "access-control-allow-origin"), "https://app.example")
        self.assertEqual(header(headers, "access-control-expose-headers"), "x-echo")

    def test_v1_config_get_put_delete(self):
        fid, name = self.make_function({"AuthType": "NONE"})
        r = self.wisp.request("GET", f"/v1/functions/{fid}/url")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["AuthType"], "NONE")
        self.assertTrue(r.json["FunctionUrl"].endswith(f"/fn/{name}/"), r.json)
        self.assertIn("CreationTime", r.json)
        bad = self.wisp.request("PUT", f"/v1/functions/{fid}/url", {"AuthType": "OPEN"})
        self.assertEqual(bad.status, 400, bad)
        self.assertEqual(self.wisp.request("DELETE", f"/v1/functions/{fid}/url").status, 204)
        self.assertEqual(call(self.wisp.port, "GET", f"/fn/{name}/")[0], 404)

    def test_lambda_api_url_config(self):
        fid, name = self.make_function()
        path = f"/2021-10-31/functions/{name}/url"
        self.assertEqual(self.wisp.request("GET", path).status, 404)
        self.assertEqual(self.wisp.request("PUT", path, {"AuthType": "NONE"}).status, 404)
        created = self.wisp.request("POST", path, {"AuthType": "NONE",
                                                   "Cors": {"AllowOrigins": ["*"]}})
        self.assertEqual(created.status, 201, created)
        for key in ["FunctionUrl", "FunctionArn", "AuthType", "Cors", "CreationTime",
                    "LastModifiedTime"]:
            self.assertIn(key, created.json)
        self.assertTrue(created.json["FunctionArn"].endswith(f":function:{name}"))
        self.assertEqual(self.wisp.request("POST", path, {"AuthType": "NONE"}).status, 409)
        updated = self.wisp.request("PUT", path, {"AuthType": "AWS_IAM"})
        self.assertEqual(updated.status, 200, updated)
        self.assertEqual(updated.json["AuthType"], "AWS_IAM")
        self.assertEqual(updated.json["Cors"]["AllowOrigins"], ["*"])  # kept
        self.assertEqual(self.wisp.request("GET", path).json["AuthType"], "AWS_IAM")
        self.assertEqual(call(self.wisp.port, "GET", f"/fn/{name}/")[0], 200)
        self.assertEqual(self.wisp.request("DELETE", path).status, 204)
        self.assertEqual(call(self.wisp.port, "GET", f"/fn/{name}/")[0], 404)


class FunctionUrlRestartTest(unittest.TestCase):
    def test_the_url_config_survives_a_restart(self):
        wisp = wisp_fixture.WispServer()
        try:
            wisp.start()
            fid = wisp.create(runtime="node", code=NODE_URL_FUNCTION, name="url-restart",
                              handler="index.handler")
            wisp.wait_state(fid)
            r = wisp.request("PUT", f"/v1/functions/{fid}/url", {"AuthType": "NONE"})
            self.assertEqual(r.status, 200, r)
            wisp.stop()
            wisp.start()
            r = wisp.request("GET", f"/v1/functions/{fid}/url")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["AuthType"], "NONE")
            self.assertEqual(call(wisp.port, "GET", "/fn/url-restart/")[0], 200)
        finally:
            wisp.kill()
            wisp.cleanup()


class FunctionUrlAuthTest(unittest.TestCase):
    """With auth required: a NONE URL is public, an AWS_IAM one takes the platform's keys."""

    @classmethod
    def setUpClass(cls):
        cls.server = AuthServer().start()
        cls.wisp = cls.server.wisp

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_none_is_public_and_aws_iam_needs_a_key(self):
        key = {"Authorization": f"Bearer {AuthServer.CONFIG_KEY_SECRET}"}
        for name, auth in [("public-url", "NONE"), ("private-url", "AWS_IAM")]:
            fid = self.wisp.create(runtime="node", code=NODE_URL_FUNCTION, name=name,
                                   handler="index.handler")
            self.wisp.wait_state(fid)
            r = self.wisp.request("PUT", f"/v1/functions/{fid}/url", {"AuthType": auth})
            self.assertEqual(r.status, 200, r)
        status, _, body = call(self.wisp.port, "GET", "/fn/public-url/x")
        self.assertEqual(status, 200, body)
        self.assertEqual(call(self.wisp.port, "GET", "/fn/private-url/x")[0], 401)
        status, _, body = call(self.wisp.port, "GET", "/fn/private-url/x", headers=key)
        self.assertEqual(status, 200, body)
        # The caller's key is not handed to the function.
        self.assertNotIn("authorization", json.loads(body)["headers"])
        # A name without a URL, or unknown, is not public: no key, no answer.
        self.assertEqual(call(self.wisp.port, "GET", "/fn/no-such/x")[0], 401)
        # The public URL opens nothing else: a path that climbs out of it still reaches only
        # the function.
        self.assertEqual(call(self.wisp.port, "GET", "/v1/functions")[0], 401)
        status, _, body = call(self.wisp.port, "GET", "/fn/public-url/../../v1/functions")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["rawPath"], "/../../v1/functions")

    def test_the_lambda_api_configures_a_url_with_a_signed_request(self):
        fid = self.wisp.create(runtime="node", code=NODE_URL_FUNCTION, name="signed-url",
                               handler="index.handler")
        self.wisp.wait_state(fid)
        path = "/2021-10-31/functions/signed-url/url"
        body = json.dumps({"AuthType": "NONE"}).encode()
        unsigned = send(self.wisp.port, "POST", path, {"Content-Type": "application/json"}, body)
        self.assertEqual(unsigned.status, 403, unsigned)
        headers, body = signed_request(self.wisp.port, "POST", path, body,
                                       AuthServer.CONFIG_KEY_ID, AuthServer.CONFIG_KEY_SECRET)
        created = send(self.wisp.port, "POST", path, headers, body)
        self.assertEqual(created.status, 201, created)
        self.assertEqual(created.json["AuthType"], "NONE")
        self.assertEqual(call(self.wisp.port, "GET", "/fn/signed-url/")[0], 200)


if __name__ == "__main__":
    unittest.main()
