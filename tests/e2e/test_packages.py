"""Deployment packages: functions created from a zip (the /v1 `zip` field, base64), their
dependencies and folders, and zips that are refused with a reason and leave nothing on disk."""

import base64
import hashlib
import io
import os
import shutil
import sqlite3
import stat
import tempfile
import time
import unittest
import zipfile

from wisp_fixture import WispServer, WispTestCase


def make_zip(files, links=None, raw_names=None):
    """files: {name: text or (text, mode)}; links: {name: target}; raw_names: [(name, text)]
    written as given (hostile names included)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in files.items():
            text, mode = content if isinstance(content, tuple) else (content, 0o644)
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, text)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, target)
        for name, text in raw_names or []:
            z.writestr(zipfile.ZipInfo(name), text)
    return buffer.getvalue()


def b64(data):
    return base64.b64encode(data).decode()


NODE_PACKAGE = {
    "index.js": "const pad = require('left-pad');\n"
                "const { greet } = require('./lib/greet');\n"
                "exports.handler = async (event) => ({ text: greet(pad(event.n, 5)) });\n",
    "lib/greet.js": "exports.greet = (s) => `hello ${s}`;\n",
    "node_modules/left-pad/package.json": '{"name": "left-pad", "main": "src/pad.js"}',
    "node_modules/left-pad/src/pad.js":
        "module.exports = (v, n) => String(v).padStart(n, '0');\n",
}

PYTHON_PACKAGE = {
    "app/__init__.py": "",
    "app/main.py": "from .util import double\nimport vendored\n\n"
                   "def handler(event, context):\n"
                   "    return {'value': double(event['n']), 'dep': vendored.NAME}\n",
    "app/util.py": "def double(x):\n    return 2 * x\n",
    "vendored/__init__.py": "NAME = 'vendored-1.0'\n",
}


class PackageTest(WispTestCase):
    server_env = {"WISP_PREWARM_NODE_INSTANCES": "0", "WISP_PREWARM_PYTHON_INSTANCES": "0"}

    def trees(self):
        code_dir = os.path.join(self.wisp.data_dir, "code")
        return sorted(n for n in os.listdir(code_dir) if len(n) == 64)

    def create_zip(self, data, runtime, handler, **spec):
        spec.setdefault("name", self.unique_name())
        r = self.wisp.request("POST", "/v1/functions",
                              dict(spec, runtime=runtime, handler=handler, zip=b64(data)))
        self.assertEqual(r.status, 201, r)
        item = self.wisp.wait_state(r.json["id"], timeout=60)
        self.assertEqual(item["state"], "ready", item)
        return item

    def test_a_node_package_with_node_modules_runs(self):
        data = make_zip(NODE_PACKAGE)
        item = self.create_zip(data, "node", "index.handler")
        self.assertEqual(self.invoke_ok(item["id"], {"n": 42})["response"], {"text": "hello 00042"})
        # Lambda's CodeSha256 and CodeSize: of the package's bytes.
        self.assertEqual(item["code_sha256"], base64.b64encode(hashlib.sha256(data).digest()).decode())
        self.assertEqual(item["code_size"], len(data))
        self.assertIsNone(self.wisp.function(item["id"]).get("code"))

    def test_a_handler_in_a_folder_and_the_same_package_twice(self):
        files = dict(NODE_PACKAGE)
        files["src/api/handler.js"] = files.pop("index.js").replace("./lib/", "../../lib/")
        data = make_zip(files)
        before = len(self.trees())
        first = self.create_zip(data, "node", "src/api/handler.handler")
        second = self.create_zip(data, "node", "src/api/handler.handler")
        self.assertEqual(self.invoke_ok(second["id"], {"n": 7})["response"], {"text": "hello 00007"})
        # The same content is one tree.
        self.assertEqual(len(self.trees()), before + 1)
        self.assertEqual(first["code_sha256"], second["code_sha256"])

    def test_node_esm_packages_run(self):
        # "type": "module": .js files are ES modules, importing each other and a dependency.
        esm = {
            "package.json": '{"type": "module"}',
            "src/app.js": "import { twice } from './math.js';\nimport dep from 'esm-dep';\n"
                          "export const handler = async (e) => ({ v: twice(e.n), dep: dep() });\n",
            "src/math.js": "export const twice = (x) => 2 * x;\n",
            "node_modules/esm-dep/package.json":
                '{"name": "esm-dep", "type": "module", "exports": "./index.js"}',
            "node_modules/esm-dep/index.js": "export default () => 'esm-dep';\n",
        }
        item = self.create_zip(make_zip(esm), "node", "src/app.handler")
        self.assertEqual(self.invoke_ok(item["id"], {"n": 4})["response"], {"v": 8, "dep": "esm-dep"})
        # .mjs beside CommonJS.
        mjs = {
            "index.mjs": "import { label } from './lib/label.mjs';\n"
                         "import cjs from './lib/old.cjs';\n"
                         "export async function handler(e) { return label(e.n) + cjs.suffix; }\n",
            "lib/label.mjs": "export const label = (n) => `n=${n}`;\n",
            "lib/old.cjs": "module.exports = { suffix: '!' };\n",
        }
        item = self.create_zip(make_zip(mjs), "node", "index.handler")
        self.assertEqual(self.invoke_ok(item["id"], {"n": 3})["response"], "n=3!")

    def test_a_python_package_with_relative_imports_runs(self):
        item = self.create_zip(make_zip(PYTHON_PACKAGE), "python", "app/main.handler")
        self.assertEqual(self.invoke_ok(item["id"], {"n": 21})["response"],
                         {"value": 42, "dep": "vendored-1.0"})
        # Lambda's dotted spelling of the same module.
        item = self.create_zip(make_zip(PYTHON_PACKAGE), "python", "app.main.handler")
        self.assertEqual(self.invoke_ok(item["id"], {"n": 1})["response"],
                         {"value": 2, "dep": "vendored-1.0"})

    def test_an_update_replaces_code_with_a_package_and_back(self):
        fid = self.deploy("exports.handler = async () => 'single';", name=self.unique_name())
        r = self.wisp.request("PUT", f"/v1/functions/{fid}",
                              {"zip": b64(make_zip(NODE_PACKAGE)), "handler": "index.handler"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["item"]["state"], "ready", r)
        self.assertEqual(self.invoke_ok(fid, {"n": 1})["response"], {"text": "hello 00001"})
        # A change of configuration only keeps the package.
        r = self.wisp.request("PUT", f"/v1/functions/{fid}", {"env": {"A": "1"}})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.invoke_ok(fid, {"n": 2})["response"], {"text": "hello 00002"})
        r = self.wisp.request("PUT", f"/v1/functions/{fid}",
                              {"code": "exports.handler = async () => 'single again';",
                               "handler": "index.handler"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.invoke_ok(fid)["response"], "single again")

    def test_bad_packages_are_refused_with_a_reason_and_leave_nothing(self):
        before = self.trees()
        good_zip = b64(make_zip(NODE_PACKAGE))
        cases = [
            ("zip slip", {"zip": b64(make_zip({}, raw_names=[("../../evil.js", "x")]))},
             "evil.js"),
            ("absolute path", {"zip": b64(make_zip({}, raw_names=[("/tmp/evil.js", "x")]))},
             "absolute"),
            ("link out", {"zip": b64(make_zip({"index.js": "x"}, links={"up": "../../../etc"}))},
             "outside"),
            ("link absolute", {"zip": b64(make_zip({"index.js": "x"},
                                                   links={"pw": "/etc/passwd"}))}, "pw"),
            ("link loop", {"zip": b64(make_zip({"index.js": "x"}, links={"a": "b", "b": "a"}))},
             "loop"),
            ("duplicate", {"zip": b64(make_zip({}, raw_names=[("a.js", "1"), ("a.js", "2")]))},
             "twice"),
            ("not a zip", {"zip": b64(b"this is plain text, not a zip file")}, "zip"),
            ("truncated", {"zip": b64(make_zip(NODE_PACKAGE)[:100])}, "zip"),
            ("bad base64", {"zip": "!!!not base64!!!"}, "zip"),
            ("both", {"zip": good_zip, "code": "exports.handler = 1"}, "not both"),
            ("go zip", {"zip": good_zip, "runtime": "go", "style": "program"}, "zip"),
        ]
        for label, fields, reason in cases:
            with self.subTest(label):
                body = dict({"name": self.unique_name(), "runtime": "node",
                             "handler": "index.handler"}, **fields)
                r = self.wisp.request("POST", "/v1/functions", body)
                self.assertEqual(r.status, 400, f"{label}: {r!r}")
                self.assertIn(reason, r.json["error"]["message"] if isinstance(
                    r.json.get("error"), dict) else str(r.json), label)
        self.assertEqual(self.trees(), before)
        self.assertEqual(os.listdir(os.path.join(self.wisp.data_dir, "code", ".drafts")), [])
        self.assertFalse(os.path.exists("/tmp/evil.js"))

    def test_deleting_functions_collects_their_trees(self):
        before = set(self.trees())
        data = make_zip(dict(NODE_PACKAGE, **{"unique.txt": self.unique_name()}))
        item = self.create_zip(data, "node", "index.handler")
        added = set(self.trees()) - before
        self.assertEqual(len(added), 1)
        self.assertEqual(self.wisp.request("DELETE", f"/v1/functions/{item['id']}").status, 200)
        # The tree goes when the last deployment holding it is let go: at the scheduler's
        # maintenance, which drops ended instances every few seconds.
        self.wait_for(lambda: not (added & set(self.trees())), "the deleted package's tree",
                      timeout=30)

    def wait_for(self, condition, what, timeout=10):
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                self.fail(f"{what} is still there")
            time.sleep(0.05)


class PrewarmedPackageTest(WispTestCase):
    """A package in a prewarmed instance: its code is copied into the instance at its cold
    start, links included."""

    # A pool of exactly one (cold starts do not grow it): the test waits for that one.
    server_env = {"WISP_PREWARM_NODE_INSTANCES": "1", "WISP_PREWARM_PYTHON_INSTANCES": "0",
                  "WISP_PREWARM_MAX_INSTANCES": "1"}

    def test_a_package_with_links_runs_in_a_prewarmed_instance(self):
        files = dict(NODE_PACKAGE)
        files["index.js"] = ("const pad = require('pad-alias');\n"
                             "const fs = require('fs');\n"
                             "const task = fs.readFileSync('/proc/self/mountinfo', 'utf8')\n"
                             "  .split('\\n').find((l) => l.split(' ')[4] === '/var/task');\n"
                             "exports.handler = async (e) => ({ text: pad(e.n, 3),\n"
                             "  bin: fs.readlinkSync(__dirname + '/node_modules/.bin/pad'),\n"
                             "  from: task.split(' ')[3].split('/')[1] });\n")
        data = make_zip(files, links={"node_modules/pad-alias": "left-pad",
                                      "node_modules/.bin/pad": "../left-pad/src/pad.js"})
        deadline = time.monotonic() + 30
        while self.wisp.health()["prewarmed"].get("prewarm/node") != 1:
            if time.monotonic() > deadline:
                self.skipTest("the node prewarm pool did not fill in 30 s on this machine")
            time.sleep(0.05)
        r = self.wisp.request("POST", "/v1/functions", {
            "name": self.unique_name(), "runtime": "node", "handler": "index.handler",
            "zip": b64(data)})
        self.assertEqual(r.status, 201, r)
        item = self.wisp.wait_state(r.json["id"], timeout=60)
        self.assertEqual(item["state"], "ready", item)
        # "from": where the instance's /var/task is bound from on the launcher's stage: a
        # prewarmed instance's own directory (prewarm/<id>), not a fresh instance's copy
        # (trees/<n>), which is what a failed copy into the prewarmed instance falls back to.
        self.assertEqual(self.invoke_ok(item["id"], {"n": 5})["response"],
                         {"text": "005", "bin": "../left-pad/src/pad.js", "from": "prewarm"})


class UpgradeTest(unittest.TestCase):
    """A data dir of a wispd before the code store: code under functions/<id>/v<n>, records
    without a tree. wispd moves it into the store at start and removes functions/."""

    def setUp(self):
        self.data_dir = tempfile.mkdtemp(prefix="wisp-e2e-upgrade-")
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.kill()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def server(self):
        s = WispServer(data_dir=self.data_dir)
        self.servers.append(s)
        return s.start()

    def test_an_older_data_dir_is_moved_into_the_code_store(self):
        first = self.server()
        node = first.create(name="old-node", runtime="node",
                            code="exports.handler = async () => 'from before';")
        self.assertEqual(first.wait_state(node)["state"], "ready")
        first.stop()
        # Rewrite the data dir as an older wispd left it.
        code_dir = os.path.join(self.data_dir, "code")
        db = sqlite3.connect(os.path.join(self.data_dir, "wisp.db"))
        (tree,) = db.execute("SELECT code_tree FROM functions WHERE id = ?", (node,)).fetchone()
        db.execute("UPDATE functions SET code_tree = '', code_sha256 = '', code_size = 0")
        db.commit()
        db.close()
        old = os.path.join(self.data_dir, "functions", node, "v1")
        os.makedirs(os.path.dirname(old))
        shutil.move(os.path.join(code_dir, tree), old)
        # The old version's file is what runs after the upgrade (not the record's copy).
        with open(os.path.join(old, "index.js"), "w") as f:
            f.write("exports.handler = async () => 'moved';")

        second = self.server()
        r = second.invoke(node)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["response"], "moved")
        self.assertFalse(os.path.exists(os.path.join(self.data_dir, "functions")))
        trees = [n for n in os.listdir(code_dir) if len(n) == 64]
        self.assertEqual(len(trees), 1)
        item = second.function(node)
        self.assertEqual(item["code_size"], len("exports.handler = async () => 'from before';"))
        second.stop()
        db = sqlite3.connect(os.path.join(self.data_dir, "wisp.db"))
        (stored,) = db.execute("SELECT code_tree FROM functions WHERE id = ?", (node,)).fetchone()
        db.close()
        self.assertEqual(stored, trees[0])


if __name__ == "__main__":
    unittest.main()
