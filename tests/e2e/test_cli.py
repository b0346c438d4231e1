"""The `wisp` command-line tool driven as a user would: a real wispd, build/bin/wisp run as a
subprocess with WISP_URL (and WISP_KEY) in its environment; tables read as text, --json parsed,
exit codes checked (0 ok, 1 usage, 2 not found, 3 failure, 4 auth, 5 cannot connect)."""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import unittest

import wisp_fixture
from auth_support import AuthServer
from wisp_fixture import WispTestCase

HELLO = ('async function handler(event) { console.log("hi " + (event.name || "")); '
         'return { message: "Hello " + event.name }; }\n')
FAILING = "async function handler() { throw new Error('boom'); }\n"
VERSIONED = "async function handler() { return { v: %r }; }\n"


def cli_binary():
    """build/bin/wisp beside the wispd under test (WISP_CLI overrides)."""
    if os.environ.get("WISP_CLI"):
        return os.environ["WISP_CLI"]
    return os.path.join(os.path.dirname(os.path.abspath(wisp_fixture.find_binary())), "wisp")


def require_cli():
    if not os.path.exists(cli_binary()):
        raise unittest.SkipTest(f"{cli_binary()} is not built (cmake --build build --target wisp)")


def run_cli(url, *args, key=None, cwd=None, timeout=60):
    env = {k: v for k, v in os.environ.items() if k not in ("WISP_URL", "WISP_KEY")}
    env["WISP_URL"] = url
    if key is not None:
        env["WISP_KEY"] = key
    return subprocess.run([cli_binary(), *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


class CliTest(WispTestCase):
    @classmethod
    def setUpClass(cls):
        require_cli()
        super().setUpClass()
        cls.url = f"http://127.0.0.1:{cls.wisp.port}"
        cls.workdir = tempfile.mkdtemp(prefix="wisp-cli-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.workdir, ignore_errors=True)
        super().tearDownClass()

    def wisp_cli(self, *args, expect=0, **kwargs):
        result = run_cli(self.url, *args, cwd=self.workdir, **kwargs)
        self.assertEqual(result.returncode, expect,
                         f"wisp {' '.join(args)}\nstdout: {result.stdout}\nstderr: {result.stderr}")
        return result

    def write(self, name, text):
        path = os.path.join(self.workdir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        return path

    def deploy(self, name, code, *extra):
        path = self.write(f"{name}.js", code)
        self.wisp_cli("deploy", path, "--name", name, *extra)
        fid = self.function_id(name)
        self.wisp.wait_state(fid)
        return fid

    def function_id(self, name):
        listed = json.loads(self.wisp_cli("ls", "--json").stdout)
        return next(f["id"] for f in listed["items"] if f["name"] == name)

    def test_deploy_ls_get_invoke_rm(self):
        name = self.unique_name("hello")
        fid = self.deploy(name, HELLO, "--env", "GREETING=hi", "--memory", "128", "--timeout", "5")
        table = self.wisp_cli("ls").stdout.splitlines()
        self.assertEqual(table[0].split()[:3], ["NAME", "RUNTIME", "STATE"])
        row = next(line.split() for line in table[1:] if line.split()[0] == name)
        self.assertEqual(row[1:3], ["node", "ready"])
        self.assertIn(fid, row)
        self.assertIn(name, self.wisp_cli("ls", "--quiet").stdout.split())

        item = json.loads(self.wisp_cli("get", name, "--json").stdout)["item"]
        self.assertEqual((item["id"], item["memory_mb"], item["timeout_seconds"]), (fid, 128, 5))
        self.assertEqual(item["env"], {"GREETING": "hi"})
        shown = self.wisp_cli("get", name).stdout
        self.assertRegex(shown, r"memory_mb\s+128")

        out = self.wisp_cli("invoke", name, "--data", '{"name": "cli"}')
        self.assertEqual(json.loads(out.stdout), {"message": "Hello cli"})
        self.assertIn("hi cli", out.stderr)

        # Deploying the same name again updates that function.
        self.write(f"{name}.js", HELLO.replace("Hello ", "Hey "))
        updated = self.wisp_cli("deploy", f"{name}.js", "--name", name).stdout
        self.assertIn("Updated", updated)
        self.assertEqual(self.function_id(name), fid)
        self.assertEqual(json.loads(self.wisp_cli("invoke", name, "-d", '{"name":"x"}').stdout),
                         {"message": "Hey x"})

        self.assertIn("Deleted", self.wisp_cli("rm", name).stdout)
        self.assertNotIn(name, self.wisp_cli("ls", "--quiet").stdout.split())
        self.wisp_cli("get", name, expect=2)

    def test_deploy_a_folder_as_a_package(self):
        name = self.unique_name("pkg")
        self.write("pkg/index.js",
                   "const util = require('./lib/util');\n"
                   "exports.handler = async (event) => ({ answer: util.answer });\n")
        self.write("pkg/lib/util.js", "exports.answer = 42;\n")
        self.wisp_cli("deploy", "pkg", "--name", name)
        self.wisp.wait_state(self.function_id(name))
        self.assertEqual(json.loads(self.wisp_cli("invoke", name).stdout), {"answer": 42})

    def test_invoke_data_file_async_and_json(self):
        name = self.unique_name("invoke")
        fid = self.deploy(name, HELLO)
        self.write("event.json", '{"name": "from a file"}')
        answer = json.loads(self.wisp_cli("invoke", name, "--data", "@event.json", "--json").stdout)
        self.assertEqual(answer["status"], "success")
        self.assertEqual(answer["response"], {"message": "Hello from a file"})

        queued = json.loads(self.wisp_cli("invoke", name, "--async", "--json",
                                          "-d", '{"name": "later"}').stdout)
        self.assertEqual(queued["status"], "queued")
        self.assertIn("Queued invocation", self.wisp_cli("invoke", name, "--async").stdout)
        # The queued call runs: its record shows up in the logs.
        for _ in range(200):
            records = json.loads(self.wisp_cli("logs", name, "--json").stdout)["items"]
            if any(r.get("event") == {"name": "later"} and r["status"] == "success"
                   for r in records):
                break
            threading.Event().wait(0.1)
        else:
            self.fail(f"the async call never ran: {records}")
        self.assertEqual(records[0]["function_id"], fid)

        self.wisp_cli("invoke", name, "--data", "@missing.json", expect=1)
        self.wisp_cli("invoke", name, "--data", "{not json", expect=1)

    def test_a_failing_function_exits_3(self):
        name = self.unique_name("failing")
        self.deploy(name, FAILING)
        result = self.wisp_cli("invoke", name, expect=3)
        self.assertIn("wisp logs", result.stderr)

    def test_logs_table_limit_and_follow(self):
        name = self.unique_name("logs")
        self.deploy(name, HELLO)
        for who in ("one", "two", "three"):
            self.wisp_cli("invoke", name, "-d", json.dumps({"name": who}))
        text = self.wisp_cli("logs", name).stdout
        self.assertLess(text.index("hi one"), text.index("hi three"))  # oldest first
        self.assertIn("success", text)
        limited = json.loads(self.wisp_cli("logs", name, "--limit", "2", "--json").stdout)
        self.assertEqual(len(limited["items"]), 2)

        env = {k: v for k, v in os.environ.items() if k != "WISP_KEY"}
        env["WISP_URL"] = self.url
        follower = subprocess.Popen([cli_binary(), "logs", name, "--follow", "--json"], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # The follower is connected once the server lists it; then a call reaches it.
            lines = []
            reader = threading.Thread(target=lambda: lines.append(follower.stdout.readline()))
            reader.start()
            for _ in range(100):
                if not reader.is_alive():
                    break
                self.wisp_cli("invoke", name, "-d", '{"name": "followed"}')
                reader.join(0.2)
            reader.join(30)
            self.assertTrue(lines and lines[0], "the follower printed nothing")
            record = json.loads(lines[0])
            self.assertEqual(record["event"], {"name": "followed"})
            # Deleting the function ends the stream with "not found".
            self.wisp_cli("rm", name)
            self.assertEqual(follower.wait(timeout=60), 2)
        finally:
            if follower.poll() is None:
                follower.kill()
                follower.wait()
            follower.stdout.close()
            follower.stderr.close()

    def test_versions_publish_rollback(self):
        name = self.unique_name("versions")
        fid = self.deploy(name, VERSIONED % "a")
        self.assertIn("version 1", self.wisp_cli("publish", name).stdout)
        self.write(f"{name}.js", VERSIONED % "b")
        self.wisp_cli("deploy", f"{name}.js", "--name", name)
        self.wisp.wait_state(fid)
        self.assertIn("version 2", self.wisp_cli("publish", name, "--description", "b").stdout)

        def live():
            out = self.wisp_cli("invoke", name, "--qualifier", "live", "--json").stdout
            return json.loads(out)["response"]["v"]

        listed = json.loads(self.wisp_cli("versions", name, "--json").stdout)
        self.assertEqual([v["version"] for v in listed["versions"]], [1, 2])
        self.assertEqual([(a["name"], a["version"]) for a in listed["aliases"]], [("live", 2)])
        table = self.wisp_cli("versions", name).stdout.splitlines()
        self.assertEqual(table[2].split()[:2], ["2", "live"])
        self.assertEqual(live(), "b")

        self.assertIn("version 1", self.wisp_cli("rollback", name).stdout)
        self.assertEqual(live(), "a")
        # Nothing older than 1; a version never published is not found.
        self.assertIn("nothing to roll back to", self.wisp_cli("rollback", name, expect=1).stderr)
        self.wisp_cli("rollback", name, "7", expect=2)
        self.wisp_cli("rollback", name, "2")
        self.assertEqual(live(), "b")

    def test_bad_usage_exits_1(self):
        for args in ([], ["nosuchcommand"], ["get"], ["deploy", "x.js"],
                     ["logs", "f", "--limit", "0"], ["completion", "fish"]):
            with self.subTest(args=args):
                self.wisp_cli(*args, expect=1)
        self.write("empty-env.js", HELLO)
        result = self.wisp_cli("deploy", "empty-env.js", "--name", self.unique_name("usage"),
                               "--env", "NOEQUALS", expect=1)
        self.assertIn("KEY=VALUE", result.stderr)
        self.wisp_cli("deploy", "no-such-file.js", "--name", "x", expect=1)
        with open(os.path.join(self.workdir, "binary.js"), "wb") as f:
            f.write(b"\xff\xfe\x00binary")
        result = self.wisp_cli("deploy", "binary.js", "--name", "x", expect=1)
        self.assertIn("not UTF-8", result.stderr)

    def test_unknown_name_exits_2(self):
        for command in ("get", "invoke", "logs", "rm", "versions", "publish", "rollback"):
            with self.subTest(command=command):
                result = self.wisp_cli(command, "no-such-function", expect=2)
                self.assertIn("no function named 'no-such-function'", result.stderr)
                self.assertIn("wisp ls", result.stderr)

    def test_help_and_completion(self):
        helped = self.wisp_cli("--help").stdout
        for line in ("5  cannot connect", "WISP_URL", "WISP_KEY", "rollback"):
            self.assertIn(line, helped)
        script = self.wisp_cli("completion", "bash").stdout
        self.assertIn("complete -F _wisp wisp", script)
        if shutil.which("bash"):
            checked = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
            self.assertEqual(checked.returncode, 0, checked.stderr)


class CliCannotConnectTest(unittest.TestCase):
    def test_wispd_down_exits_5_and_says_what_to_do(self):
        require_cli()
        url = f"http://127.0.0.1:{wisp_fixture.free_port()}"
        result = run_cli(url, "ls")
        self.assertEqual(result.returncode, 5, result)
        self.assertIn(f"is wispd running at {url}?", result.stderr)
        self.assertIn("make run", result.stderr)
        self.assertEqual(run_cli("https://127.0.0.1:1", "ls").returncode, 1)


class CliAuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_cli()
        cls.server = AuthServer().start()
        cls.url = f"http://127.0.0.1:{cls.server.wisp.port}"

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_keys_create_ls_revoke_with_wisp_key(self):
        missing = run_cli(self.url, "ls")
        self.assertEqual(missing.returncode, 4, missing)
        self.assertIn("WISP_KEY", missing.stderr)
        self.assertEqual(run_cli(self.url, "ls", key="wrong-wrong-wrong").returncode, 4)

        admin = AuthServer.CONFIG_KEY_SECRET
        created = run_cli(self.url, "keys", "create", "--description", "from the cli", "--json",
                          key=admin)
        self.assertEqual(created.returncode, 0, created)
        item = json.loads(created.stdout)["item"]
        self.assertEqual(run_cli(self.url, "ls", key=item["secret"]).returncode, 0)

        listed = run_cli(self.url, "keys", "ls", key=admin)
        self.assertEqual(listed.returncode, 0, listed)
        row = next(line for line in listed.stdout.splitlines() if line.startswith(item["id"]))
        self.assertIn("from the cli", row)
        self.assertIn(item["id"], [k["id"] for k in json.loads(
            run_cli(self.url, "keys", "ls", "--json", key=admin).stdout)["items"]])

        revoked = run_cli(self.url, "keys", "revoke", item["id"], key=admin)
        self.assertEqual(revoked.returncode, 0, revoked)
        self.assertEqual(run_cli(self.url, "ls", key=item["secret"]).returncode, 4)
        self.assertEqual(run_cli(self.url, "keys", "revoke", "WKNOSUCHKEY000000000",
                                 key=admin).returncode, 2)


if __name__ == "__main__":
    unittest.main()
