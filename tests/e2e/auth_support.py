"""Helpers of the authentication tests: `wispd keys`, and AWS Signature Version 4 computed by
botocore (the library the AWS CLI and boto3 sign with), so that Wisp's verifier is checked
against the real client and not against a copy of its own rules."""

import datetime
import http.client
import os
import re
import stat
import subprocess
import tempfile
import unittest

import wisp_fixture

REGION = "us-east-1"


def require_botocore():
    try:
        import botocore  # noqa: F401
    except ImportError:
        raise unittest.SkipTest("python3-botocore is not installed (scripts/install-deps)")


def keys_command(data_dir, *words, check=True):
    """Runs `wispd keys WORDS --data-dir DATA_DIR`; returns the CompletedProcess."""
    cmd = [wisp_fixture.find_binary(), "keys", *words, "--data-dir", data_dir]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if check and done.returncode != 0:
        raise AssertionError(f"{cmd} exited {done.returncode}: {done.stderr}")
    return done


def create_key(data_dir, description="test"):
    """Creates a key with the command line; returns (id, secret)."""
    out = keys_command(data_dir, "create", "--description", description).stdout
    key_id = re.search(r"^id:\s+(\S+)$", out, re.M).group(1)
    secret = re.search(r"^secret:\s+(\S+)$", out, re.M).group(1)
    return key_id, secret


def write_config(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)


def lambda_client(port, key_id, secret):
    """A botocore Lambda client for wispd's port (no retries: an answer is final)."""
    require_botocore()
    import botocore.session
    from botocore.config import Config
    session = botocore.session.Session()
    return session.create_client(
        "lambda", region_name=REGION, endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id=key_id, aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}))


def signed_request(port, method, path, body, key_id, secret, when=None, service="lambda",
                   region=REGION):
    """Signs METHOD http://127.0.0.1:PORT/PATH with botocore's SigV4Auth (at `when`, a naive UTC
    datetime, or now). Returns (headers dict, body bytes), ready for http.client."""
    require_botocore()
    from unittest import mock
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    request = AWSRequest(method=method, url=f"http://127.0.0.1:{port}{path}", data=body,
                         headers={"Content-Type": "application/json"})
    auth = SigV4Auth(Credentials(key_id, secret), service, region)
    if when is None:
        auth.add_auth(request)
    else:
        with mock.patch("botocore.auth.datetime") as fake:
            # botocore 1.29 reads utcnow(); later ones now(timezone.utc).
            fake.datetime.utcnow.return_value = when
            fake.datetime.now.return_value = when
            auth.add_auth(request)
    return dict(request.headers.items()), body


def send(port, method, path, headers, body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        payload = resp.read()
        return wisp_fixture.Response(resp.status,
                                     {k.lower(): v for k, v in resp.getheaders()}, payload)
    finally:
        conn.close()


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


class AuthServer:
    """A wispd with auth required: one key in the config file, one made by `wispd keys`."""

    CONFIG_KEY_ID = "WKCONFIGKEY000000001"
    CONFIG_KEY_SECRET = "config-file-secret-0123456789abcdefghij"

    def __init__(self):
        self.data_dir = tempfile.mkdtemp(prefix="wisp-auth-")
        self.config_path = os.path.join(self.data_dir, "wisp.toml")
        write_config(self.config_path,
                     "[auth]\nrequired = true\n\n[[auth.keys]]\n"
                     f'id = "{self.CONFIG_KEY_ID}"\nsecret = "{self.CONFIG_KEY_SECRET}"\n'
                     'description = "from the config file"\n')
        self.cli_key = create_key(self.data_dir, "made before start")
        self.wisp = wisp_fixture.WispServer(data_dir=self.data_dir,
                                            args=["--config", self.config_path],
                                            api_key_secret=self.CONFIG_KEY_SECRET)

    def start(self):
        self.wisp.start()
        return self

    def stop(self):
        import shutil
        try:
            self.wisp.stop()
        finally:
            self.wisp.kill()
            if not os.environ.get("WISP_E2E_KEEP"):
                shutil.rmtree(self.data_dir, ignore_errors=True)
