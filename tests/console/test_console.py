"""The web console in a real browser: a real wispd with authentication on, and Debian's
headless Chromium driven by puppeteer-core (console_flow.mjs) through create, edit, test-invoke,
history, graphs, a live state change, dead letters and delete. Screenshots of each page go to
$CONSOLE_ARTIFACTS (the build directory's console-artifacts/ under ctest).

Skips, with the reason, where wispd cannot run (not root), or Chromium or puppeteer-core is
missing or cannot start."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))

import auth_support  # noqa: E402
import wisp_fixture  # noqa: E402

SKIPPED = 77


def chromium_path():
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


class ConsoleInBrowserTest(unittest.TestCase):
    def setUp(self):
        wisp_fixture.require_root()
        wisp_fixture.find_binary()
        if not os.path.exists(os.path.join(HERE, "node_modules", "puppeteer-core")):
            self.skipTest("puppeteer-core is not installed in tests/console (scripts/install-deps)")
        if not os.access(chromium_path(), os.X_OK):
            self.skipTest("Chromium is not installed (Debian package chromium; scripts/install-deps)")
        if shutil.which("node") is None:
            self.skipTest("node is not installed")

    def run_flow(self, server, key, artifacts_name):
        artifacts = os.path.join(
            os.environ.get("CONSOLE_ARTIFACTS") or tempfile.mkdtemp(prefix="wisp-console-"),
            artifacts_name)
        env = dict(os.environ, WISP_URL=f"http://127.0.0.1:{server.port}", WISP_KEY=key,
                   ARTIFACT_DIR=artifacts, CHROMIUM=chromium_path())
        done = subprocess.run(["node", os.path.join(HERE, "console_flow.mjs")], cwd=HERE, env=env,
                              capture_output=True, text=True, timeout=400)
        print(done.stdout, done.stderr, sep="\n", file=sys.stderr)
        if done.returncode == SKIPPED:
            self.skipTest(done.stdout.strip().splitlines()[-1])
        self.assertEqual(done.returncode, 0, f"the browser flow failed:\n{done.stdout}\n"
                         f"{done.stderr}\nwispd:\n{server.log_tail()}")
        print(f"screenshots in {artifacts}", file=sys.stderr)

    def test_console_flow_with_authentication(self):
        data_dir = tempfile.mkdtemp(prefix="wisp-console-")
        _, secret = auth_support.create_key(data_dir, "console test")
        server = wisp_fixture.WispServer(data_dir=data_dir, env={"WISP_AUTH_REQUIRED": "1"},
                                         api_key_secret=secret)
        server.start()
        try:
            # Without a key: the page and its files, and nothing else.
            page = wisp_fixture.raw_request(server.port, "GET", "/", b"")
            self.assertEqual(page.status, 200)
            self.assertIn(b"<!doctype html>", page.body)
            self.assertEqual(wisp_fixture.raw_request(server.port, "GET", "/console/app.js",
                                                      b"").status, 200)
            self.assertEqual(wisp_fixture.raw_request(server.port, "GET", "/v1/functions",
                                                      b"").status, 401)
            self.run_flow(server, secret, "auth-on")
        finally:
            server.stop()
            if not os.environ.get("WISP_E2E_KEEP"):
                shutil.rmtree(data_dir, ignore_errors=True)

    def test_console_flow_without_authentication(self):
        server = wisp_fixture.WispServer()
        server.start()
        try:
            self.run_flow(server, "", "auth-off")
        finally:
            server.stop()
            server.cleanup()


if __name__ == "__main__":
    unittest.main()
