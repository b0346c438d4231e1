"""The AWS SDK for JavaScript v3 (@aws-sdk/client-lambda from npm, installed by
scripts/install-deps into tests/clients/node_modules) against a wispd with auth on: the SDK
signs every request with a real Wisp key (SigV4) and parses every answer. The checks are in
tests/clients/lambda_sdk_test.mjs; this test starts wispd, makes the key and the packages, runs
the script, and checks what the refused packages left behind: nothing."""

import io
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import zipfile

import auth_support
import lambda_packages
import wisp_fixture
from auth_support import create_key, write_config

CLIENTS = os.path.join(wisp_fixture.REPO_ROOT, "tests", "clients")
SDK = os.path.join(CLIENTS, "node_modules", "@aws-sdk", "client-lambda", "package.json")
NODE = shutil.which("node") or "/usr/bin/node"
# Small limits, so the over-limit packages are small too; the checks are the same at Lambda's.
MAX_ZIP_MB = 2
MAX_UNZIPPED_MB = 4
MAX_ENTRIES = 300


@unittest.skipUnless(os.path.exists(SDK),
                     "@aws-sdk/client-lambda is not installed (run scripts/install-deps)")
@unittest.skipUnless(os.access(NODE, os.X_OK), "node is not installed")
class LambdaSdkTest(unittest.TestCase):
    def setUp(self):
        self.data_dir = tempfile.mkdtemp(prefix="wisp-sdk-")
        config = os.path.join(self.data_dir, "wisp.toml")
        write_config(config, "[auth]\nrequired = true\n")
        self.key_id, self.secret = create_key(self.data_dir, "sdk test")
        self.wisp = wisp_fixture.WispServer(
            data_dir=self.data_dir, args=["--config", config], api_key_secret=self.secret,
            env={"WISP_CODE_MAX_ZIP_MB": str(MAX_ZIP_MB),
                 "WISP_CODE_MAX_UNZIPPED_MB": str(MAX_UNZIPPED_MB),
                 "WISP_CODE_MAX_ZIP_ENTRIES": str(MAX_ENTRIES)})
        self.wisp.start()
        self.addCleanup(shutil.rmtree, self.data_dir, True)
        self.addCleanup(self.wisp.kill)

    def test_the_sdk_creates_invokes_updates_and_deletes_and_parses_every_error(self):
        zips = os.path.join(self.data_dir, "zips")
        os.mkdir(zips)
        app, app2 = lambda_packages.app_zip(1), lambda_packages.app_zip(2)
        bad = lambda_packages.bad_zips(MAX_UNZIPPED_MB << 20, MAX_ENTRIES)
        for name, data in [("app.zip", app), ("app2.zip", app2)] + [
                (name, data) for name, (data, _) in bad.items()]:
            with open(os.path.join(zips, name), "wb") as f:
                f.write(data)
        env = dict(os.environ, **{
            "WISP_ENDPOINT": f"http://127.0.0.1:{self.wisp.port}",
            "WISP_KEY_ID": self.key_id,
            "WISP_KEY_SECRET": self.secret,
            "WISP_ZIPS": zips,
            "WISP_MAX_ZIP_BYTES": str(MAX_ZIP_MB << 20),
            "WISP_APP_SHA256": lambda_packages.lambda_sha256(app),
            "WISP_APP2_SHA256": lambda_packages.lambda_sha256(app2),
            "WISP_BAD_ZIPS": json.dumps({name: reason for name, (_, reason) in bad.items()}),
        })
        done = subprocess.run([NODE, os.path.join(CLIENTS, "lambda_sdk_test.mjs")], env=env,
                              cwd=CLIENTS, capture_output=True, text=True, timeout=600)
        self.assertEqual(done.returncode, 0,
                         f"{done.stdout}\n{done.stderr}\n--- wispd log:\n{self.wisp.log_tail()}")
        self.assertIn("checks passed", done.stdout)

        # The refused packages left no function and nothing in the code store: no draft, and
        # once the deleted functions' trees are collected, no tree.
        listed = self.wisp.request("GET", "/v1/functions")
        self.assertEqual(listed.status, 200)
        self.assertEqual(listed.json["items"], [])
        code_dir = os.path.join(self.data_dir, "code")
        self.assertEqual(os.listdir(os.path.join(code_dir, ".drafts")), [])
        deadline = time.monotonic() + 30
        while [n for n in os.listdir(code_dir) if not n.startswith(".")] and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual([n for n in os.listdir(code_dir) if not n.startswith(".")], [])
        self.wisp.stop()

    def test_code_location_takes_a_signature_like_the_rest_of_the_api(self):
        auth_support.require_botocore()
        code = "exports.handler = async () => 1;\n"
        fid = self.wisp.create(name="located", runtime="node", code=code)
        self.assertEqual(self.wisp.wait_state(fid)["state"], "ready")

        def signed_get(path):
            headers, body = auth_support.signed_request(self.wisp.port, "GET", path, b"",
                                                        self.key_id, self.secret)
            return auth_support.send(self.wisp.port, "GET", path, headers, body)

        got = signed_get("/2015-03-31/functions/located")
        self.assertEqual(got.status, 200, got)
        location = urllib.parse.urlsplit(json.loads(got.body)["Code"]["Location"])
        downloaded = signed_get(location.path)
        self.assertEqual(downloaded.status, 200, downloaded)
        package = zipfile.ZipFile(io.BytesIO(downloaded.body))
        self.assertEqual([package.read(n) for n in package.namelist()], [code.encode()])
        unsigned = auth_support.send(self.wisp.port, "GET", location.path, {}, b"")
        self.assertEqual(unsigned.status, 403, unsigned)
        self.wisp.stop()


if __name__ == "__main__":
    unittest.main()
