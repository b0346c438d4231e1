"""End-to-end: TypeScript functions (Node runtime). A package whose handler module is a .ts or
.mts file is compiled at deploy with Debian's tsc (node-typescript), in a build sandbox; the
JavaScript lands in the function's code tree next to the sources. A type or syntax error fails
the deploy (state error) with the compiler's message and file:line."""

import base64
import io
import os
import stat
import unittest
import zipfile

from wisp_fixture import WispServer, WispTestCase

TSC = "/usr/bin/tsc"


def make_zip(files):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in files.items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            z.writestr(info, text)
    return base64.b64encode(buffer.getvalue()).decode()


TYPED = {
    "index.ts": "import { greet } from './lib/greet';\n"
                "interface Event { name?: string }\n"
                "export const handler = async (event: Event) => {\n"
                "  const region: string = process.env.AWS_REGION ?? 'none';\n"
                "  return { text: greet(event.name ?? 'world'), region: region.length > 0 };\n"
                "};\n",
    "lib/greet.ts": "export function greet(who: string): string { return `hello ${who}`; }\n",
}

ESM = {
    "app.mts": "const double = (n: number): number => 2 * n;\n"
               "export const handler = async (event: { n: number }) => ({ value: double(event.n) });\n",
}

TYPE_ERROR = {
    "index.ts": "export const handler = async (event: unknown) => {\n"
                "  const count: number = 'three';\n"
                "  return count;\n"
                "};\n",
}

SYNTAX_ERROR = {
    "index.ts": "export const handler = async (event: unknown) => {\n"
                "  return { ok: true ;\n"
                "};\n",
}


class TypeScriptTest(WispTestCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(TSC, os.X_OK):
            raise unittest.SkipTest("node-typescript is not installed (scripts/install-deps)")
        super().setUpClass()

    def deploy(self, name, files, handler="index.handler"):
        r = self.wisp.request("POST", "/v1/functions",
                              {"name": name, "runtime": "node", "handler": handler,
                               "zip": make_zip(files)})
        self.assertEqual(r.status, 201, r)
        return self.wisp.wait_state(r.json["id"], timeout=180)

    def invoke(self, fid, event):
        r = self.wisp.request("POST", f"/v1/functions/{fid}/invoke", {"event": event})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "success", r)
        return r.json["response"]

    def test_a_typescript_package_is_compiled_and_runs(self):
        item = self.deploy("ts-hello", TYPED)
        self.assertEqual(item["state"], "ready", item)
        self.assertEqual(self.invoke(item["id"], {"name": "ts"}),
                         {"text": "hello ts", "region": True})

    def test_an_mts_module_runs_as_an_es_module(self):
        item = self.deploy("ts-esm", ESM, handler="app.handler")
        self.assertEqual(item["state"], "ready", item)
        self.assertEqual(self.invoke(item["id"], {"n": 21}), {"value": 42})

    def test_a_type_error_fails_the_deploy_with_file_and_line(self):
        item = self.deploy("ts-type-error", TYPE_ERROR)
        self.assertEqual(item["state"], "error", item)
        self.assertIn("index.ts:2:9", item["error"])
        self.assertIn("TS2322", item["error"])
        self.assertIn("Type 'string' is not assignable to type 'number'", item["error"])

    def test_a_syntax_error_fails_the_deploy_with_file_and_line(self):
        item = self.deploy("ts-syntax-error", SYNTAX_ERROR)
        self.assertEqual(item["state"], "error", item)
        self.assertIn("index.ts:2:", item["error"])
        self.assertIn("error TS1005", item["error"])

    def test_a_failed_update_keeps_the_running_version(self):
        item = self.deploy("ts-update", TYPED)
        self.assertEqual(item["state"], "ready", item)
        r = self.wisp.request("PUT", f"/v1/functions/{item['id']}", {"zip": make_zip(TYPE_ERROR)})
        self.assertIn(r.status, (400, 200), r)
        self.assertIn("index.ts:2:9", r.body.decode())
        self.assertEqual(self.invoke(item["id"], {"name": "still"})["text"], "hello still")


if __name__ == "__main__":
    unittest.main()
