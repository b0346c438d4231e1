"""Authentication (issue 12): off by default on loopback; when required, bearer keys on /v1 and
every other non-AWS path, AWS Signature Version 4 on the Lambda API's paths (checked with
botocore, the AWS SDK for Python), keys from the config file and from `wispd keys` and
/v1/keys, revocation at once."""

import json
import time
import unittest

import auth_support
import wisp_fixture
from auth_support import AuthServer, create_key, keys_command, send, signed_request

NODE_ECHO = "exports.handler = async (event) => ({ echoed: event });"
AUTH_FAILURES = (401, 403)


class AuthOffByDefaultTest(wisp_fixture.WispTestCase):
    def test_requests_need_no_key_on_loopback(self):
        r = self.wisp.request("GET", "/v1/functions")
        self.assertEqual(r.status, 200, r)
        self.assertIn("totalInvocations", self.wisp.health())

    def test_credentials_are_not_even_read(self):
        r = self.wisp.request("GET", "/v1/functions",
                              headers={"Authorization": "Bearer not-a-key"})
        self.assertEqual(r.status, 200, r)
        r = self.wisp.request("GET", "/2015-03-31/functions/")
        self.assertNotIn(r.status, AUTH_FAILURES, r)

    def test_keys_can_be_prepared_before_auth_is_turned_on(self):
        r = self.wisp.request("POST", "/v1/keys", {"description": "for later"})
        self.assertEqual(r.status, 201, r)
        key_id = r.json["item"]["id"]
        listed = self.wisp.request("GET", "/v1/keys")
        self.assertIn(key_id, [k["id"] for k in listed.json["items"]])
        self.assertEqual(self.wisp.request("DELETE", f"/v1/keys/{key_id}").status, 200)


def altered(secret):
    """`secret` with its last character changed (to one it surely is not)."""
    return secret[:-1] + ("y" if secret.endswith("x") else "x")


class AuthRequiredTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = AuthServer().start()
        cls.wisp = cls.server.wisp
        cls.port = cls.wisp.port

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def anonymous(self, method, path, headers=None, body=None):
        client = wisp_fixture.Client(self.port)
        try:
            return client.request(method, path, body=body, headers=headers)
        finally:
            client.close()

    def bearer(self, secret, method="GET", path="/v1/functions", body=None):
        return self.anonymous(method, path, headers={"Authorization": f"Bearer {secret}"},
                              body=body)

    # --- bearer ------------------------------------------------------------------------------

    def test_no_key_is_401_with_a_bearer_challenge(self):
        for method, path in [("GET", "/v1/functions"), ("POST", "/v1/functions"),
                             ("GET", "/functions"), ("GET", "/v1/no-such-route"),
                             ("GET", "/v1/keys")]:
            r = self.anonymous(method, path)
            self.assertEqual(r.status, 401, (method, path, r))
            self.assertTrue(r.headers.get("www-authenticate", "").startswith("Bearer"), r.headers)
            self.assertIn("error", r.json)

    def test_right_and_wrong_bearer_keys(self):
        self.assertEqual(self.bearer(AuthServer.CONFIG_KEY_SECRET).status, 200)
        self.assertEqual(self.bearer(self.server.cli_key[1]).status, 200)
        wrong = self.bearer(altered(self.server.cli_key[1]))
        self.assertEqual(wrong.status, 401, wrong)
        self.assertIn('error="invalid_token"', wrong.headers["www-authenticate"])
        # The key's id is not its secret.
        self.assertEqual(self.bearer(self.server.cli_key[0]).status, 401)

    def test_health_without_a_key_tells_liveness_only(self):
        open_health = self.anonymous("GET", "/health")
        self.assertEqual(open_health.status, 200, open_health)
        self.assertEqual(open_health.json["status"], "ok")
        self.assertNotIn("totalInvocations", open_health.json)
        full = self.bearer(AuthServer.CONFIG_KEY_SECRET, path="/health")
        self.assertIn("totalInvocations", full.json)

    def test_deploy_and_invoke_with_a_bearer_key(self):
        fid = self.wisp.create(name="auth-echo", runtime="node", code=NODE_ECHO)
        self.assertEqual(self.wisp.wait_state(fid)["state"], "ready")
        r = self.wisp.invoke(fid, {"n": 1})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["response"], {"echoed": {"n": 1}})
        self.wisp.record_instances(fid)
        anonymous = self.anonymous("POST", f"/v1/functions/{fid}/invoke", body={"event": {}})
        self.assertEqual(anonymous.status, 401)

    # --- SigV4 -------------------------------------------------------------------------------

    def test_botocore_signed_requests_are_authenticated(self):
        from botocore.exceptions import ClientError
        key_id, secret = self.server.cli_key
        client = auth_support.lambda_client(self.port, key_id, secret)
        try:
            client.list_functions()
            status = 200
        except ClientError as e:
            status = e.response["ResponseMetadata"]["HTTPStatusCode"]
            code = e.response["Error"]["Code"]
            self.assertNotIn(code, ("InvalidSignatureException", "UnrecognizedClientException",
                                    "MissingAuthenticationTokenException",
                                    "IncompleteSignatureException"), e.response)
        # Authenticated: the answer is the route's (404 until the Lambda API's routes exist),
        # never an authentication failure.
        self.assertNotIn(status, AUTH_FAILURES)
        # An invoke by ARN: the path carries ':' (sent as %3A), a body and a qualifier.
        arn = "arn:aws:lambda:us-east-1:000000000000:function:auth-echo"
        try:
            client.invoke(FunctionName=arn, Payload=b'{"a": 1}', Qualifier="$LATEST")
            status = 200
        except ClientError as e:
            status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        self.assertNotIn(status, AUTH_FAILURES)

    def assert_aws_error(self, call, code):
        from botocore.exceptions import ClientError
        with self.assertRaises(ClientError) as caught:
            call()
        self.assertEqual(caught.exception.response["Error"]["Code"], code, caught.exception)
        self.assertEqual(caught.exception.response["ResponseMetadata"]["HTTPStatusCode"], 403)
        self.assertTrue(caught.exception.response["Error"]["Message"])

    def test_wrong_secret_is_invalid_signature(self):
        key_id, secret = self.server.cli_key
        client = auth_support.lambda_client(self.port, key_id, altered(secret))
        self.assert_aws_error(client.list_functions, "InvalidSignatureException")

    def test_unknown_key_is_unrecognized_client(self):
        client = auth_support.lambda_client(self.port, "WKNOSUCHKEY000000000",
                                            "a" * 40)
        self.assert_aws_error(client.list_functions, "UnrecognizedClientException")

    def test_unsigned_request_is_missing_authentication_token(self):
        r = self.anonymous("GET", "/2015-03-31/functions/")
        self.assertEqual(r.status, 403, r)
        self.assertEqual(r.headers["x-amzn-errortype"], "MissingAuthenticationTokenException")
        self.assertEqual(r.json["Type"], "User")
        self.assertEqual(r.json["message"], r.json["Message"])
        # A bearer key is no signature on the AWS paths.
        r = self.bearer(AuthServer.CONFIG_KEY_SECRET, path="/2015-03-31/functions/")
        self.assertEqual(r.status, 403, r)
        # Every date-first path is an AWS path.
        for path in ["/2016-08-19/account-settings/", "/2017-03-31/tags/x",
                     "/2018-10-31/layers", "/2021-10-31/functions/f/url"]:
            r = self.anonymous("GET", path)
            self.assertEqual(r.status, 403, (path, r))
            self.assertEqual(r.headers["x-amzn-errortype"], "MissingAuthenticationTokenException")

    def test_skewed_date_is_refused(self):
        key_id, secret = self.server.cli_key
        for minutes in (-20, 20):
            when = auth_support.utcnow() + auth_support.datetime.timedelta(minutes=minutes)
            headers, body = signed_request(self.port, "GET", "/2015-03-31/functions/", b"",
                                           key_id, secret, when=when)
            r = send(self.port, "GET", "/2015-03-31/functions/", headers, body)
            self.assertEqual(r.status, 403, r)
            self.assertEqual(r.headers["x-amzn-errortype"], "InvalidSignatureException")
            self.assertIn("Signature", r.json["message"])
        # Within the window: accepted.
        when = auth_support.utcnow() - auth_support.datetime.timedelta(minutes=5)
        headers, body = signed_request(self.port, "GET", "/2015-03-31/functions/", b"", key_id,
                                       secret, when=when)
        self.assertNotIn(send(self.port, "GET", "/2015-03-31/functions/", headers, body).status,
                         AUTH_FAILURES)

    def test_tampered_body_is_refused(self):
        key_id, secret = self.server.cli_key
        path = "/2015-03-31/functions/auth-echo/invocations"
        headers, body = signed_request(self.port, "POST", path, b'{"amount": 1}', key_id, secret)
        self.assertNotIn(send(self.port, "POST", path, headers, body).status, AUTH_FAILURES)
        r = send(self.port, "POST", path, headers, b'{"amount": 9}')
        self.assertEqual(r.status, 403, r)
        self.assertEqual(r.headers["x-amzn-errortype"], "InvalidSignatureException")

    def test_wrong_region_or_service_is_refused(self):
        key_id, secret = self.server.cli_key
        for service, region in (("lambda", "eu-west-1"), ("s3", auth_support.REGION)):
            headers, body = signed_request(self.port, "GET", "/2015-03-31/functions/", b"",
                                           key_id, secret, service=service, region=region)
            r = send(self.port, "GET", "/2015-03-31/functions/", headers, body)
            self.assertEqual(r.status, 403, r)
            self.assertEqual(r.headers["x-amzn-errortype"], "InvalidSignatureException")

    # --- key management ----------------------------------------------------------------------

    def test_cli_keys_work_at_once_and_stop_when_revoked(self):
        key_id, secret = create_key(self.server.data_dir, "made while running")
        # No restart, no wait: an unknown key makes wispd read the store first.
        self.assertEqual(self.bearer(secret).status, 200)
        client = auth_support.lambda_client(self.port, key_id, secret)
        try:
            client.list_functions()
        except Exception as e:  # noqa: BLE001
            self.assertNotIn(e.response["ResponseMetadata"]["HTTPStatusCode"], AUTH_FAILURES)

        listed = keys_command(self.server.data_dir, "list", "--config",
                              self.server.config_path).stdout
        self.assertIn(key_id, listed)
        self.assertIn("made while running", listed)
        self.assertIn(AuthServer.CONFIG_KEY_ID, listed)
        self.assertNotIn(secret, listed)
        self.assertNotIn(AuthServer.CONFIG_KEY_SECRET, listed)

        keys_command(self.server.data_dir, "revoke", key_id)
        # Another process revoked it: wispd rereads the store every second.
        deadline = time.monotonic() + 10
        while self.bearer(secret).status != 401:
            self.assertLess(time.monotonic(), deadline, "a revoked key still works")
            time.sleep(0.1)
        self.assert_aws_error(client.list_functions, "UnrecognizedClientException")

    def test_api_keys_create_list_revoke(self):
        r = self.wisp.request("POST", "/v1/keys", {"description": "through the API"})
        self.assertEqual(r.status, 201, r)
        key_id, secret = r.json["item"]["id"], r.json["item"]["secret"]
        self.assertRegex(key_id, r"^WK[A-Z0-9]{18}$")
        self.assertRegex(secret, r"^[A-Za-z0-9]{40}$")
        self.assertEqual(self.bearer(secret).status, 200)

        listed = self.wisp.request("GET", "/v1/keys")
        self.assertEqual(listed.status, 200)
        self.assertNotIn(secret, listed.body.decode())
        self.assertNotIn(AuthServer.CONFIG_KEY_SECRET, listed.body.decode())
        for item in listed.json["items"]:
            self.assertNotIn("secret", item)
        by_id = {k["id"]: k for k in listed.json["items"]}
        self.assertEqual(by_id[key_id]["description"], "through the API")
        self.assertEqual(by_id[AuthServer.CONFIG_KEY_ID]["source"], "config")

        self.assertEqual(self.wisp.request("DELETE", f"/v1/keys/{key_id}").status, 200)
        # Revoked through the API: refused on the very next request.
        self.assertEqual(self.bearer(secret).status, 401)
        self.assertEqual(self.wisp.request("DELETE", f"/v1/keys/{key_id}").status, 404)

    def test_config_keys_cannot_be_revoked_through_the_api(self):
        r = self.wisp.request("DELETE", f"/v1/keys/{AuthServer.CONFIG_KEY_ID}")
        self.assertEqual(r.status, 409, r)
        self.assertIn("config file", r.json["error"])

    def test_bad_key_requests_get_clear_errors(self):
        for body in ({"description": 5}, {"name": "x"}, {"description": "a\nb"}, [1]):
            r = self.wisp.request("POST", "/v1/keys", body)
            self.assertEqual(r.status, 400, (body, r))
            self.assertIn("error", r.json)
        r = self.wisp.request("POST", "/v1/keys", raw=b"{not json")
        self.assertEqual(r.status, 400, r)


class AuthConfigTest(unittest.TestCase):
    """Keys of the config file are checked before wispd starts."""

    def start_with(self, text):
        import os
        import shutil
        import subprocess
        import tempfile
        wisp_fixture.require_root()
        data_dir = tempfile.mkdtemp(prefix="wisp-auth-config-")
        self.addCleanup(shutil.rmtree, data_dir, True)
        path = os.path.join(data_dir, "wisp.toml")
        auth_support.write_config(path, text)
        return subprocess.run(
            [wisp_fixture.find_binary(), "--config", path, "--data-dir", data_dir, "--listen",
             f"127.0.0.1:{wisp_fixture.free_port()}"],
            capture_output=True, text=True, timeout=30)

    def test_weak_or_duplicate_config_keys_stop_wispd(self):
        weak = self.start_with('[auth]\nrequired = true\n[[auth.keys]]\n'
                               'id = "WKCONFIGKEY000000001"\nsecret = "changeme"\n')
        self.assertEqual(weak.returncode, 1, weak)
        self.assertIn("secret", weak.stderr)
        twice = ('[[auth.keys]]\nid = "WKCONFIGKEY000000001"\n'
                 'secret = "0123456789abcdefghijklmnop"\n')
        duplicate = self.start_with("[auth]\nrequired = true\n" + twice + twice)
        self.assertEqual(duplicate.returncode, 1, duplicate)
        self.assertIn("twice", duplicate.stderr)


if __name__ == "__main__":
    unittest.main()
