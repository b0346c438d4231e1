"""Nothing inside a sandbox tells the host's layout (issue 10, finding 7): not wispd's command
line through /proc/1/cmdline (init is a fork of wispd's launcher), not the host kernel's command
line, and not the host paths of the code and shim directories through the mount table (a bind
mount shows its source's path on its filesystem). Checked for a cold start into a fresh sandbox
and for one that specialised a prewarmed instance, whose code arrives after the sandbox
started."""

import os
import time
import unittest

import sandbox_fixture as sf
from sandbox_fixture import SecurityTestCase


def tearDownModule():
    sf.stop_server()


LOOK_AROUND_PY = r'''
def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError as e:
        return f"<{e.strerror}>"

def handler(event, context=None):
    paths = ["/proc/1/cmdline", "/proc/1/environ", "/proc/cmdline", "/proc/self/mountinfo",
             "/proc/self/mounts", "/proc/self/environ", "/proc/self/cgroup"]
    out = {p: read(p) for p in paths}
    out["prewarmed"] = "WISP_PREWARMED=1" in out["/proc/self/environ"].split()
    return out
'''

LOOK_AROUND_NODE = r'''
const fs = require('fs');
function read(p) {
  try { return fs.readFileSync(p).toString().replace(/\0/g, ' '); }
  catch (e) { return `<${e.code}>`; }
}
exports.handler = async () => {
  const paths = ['/proc/1/cmdline', '/proc/1/environ', '/proc/cmdline', '/proc/self/mountinfo',
                 '/proc/self/mounts', '/proc/self/environ', '/proc/self/cgroup'];
  const out = {};
  for (const p of paths) out[p] = read(p);
  out.prewarmed = out['/proc/self/environ'].split(' ').includes('WISP_PREWARMED=1');
  return out;
};
'''


class HostLayoutTest(SecurityTestCase):
    def secrets(self):
        """Strings of the host that must not appear anywhere inside."""
        binary = os.path.realpath(self.wisp.binary)
        return {
            "the data dir": os.path.realpath(self.wisp.data_dir),
            "the build dir": os.path.dirname(os.path.dirname(binary)),
            "the source tree": sf.REPO_ROOT,
            "wispd's listen address": f"127.0.0.1:{self.wisp.port}",
            "wispd's flags": "--data-dir",
        }

    def wait_for_prewarmed(self, runtime):
        deadline = time.monotonic() + 15
        while self.wisp.health().get("prewarmed", {}).get(f"prewarm/{runtime}", 0) < 1:
            if time.monotonic() > deadline:
                self.skipTest(f"no prewarmed {runtime} instance came up (prewarming is off?)")
            time.sleep(0.05)

    def look(self, code, runtime, prewarmed, **spec):
        if prewarmed:
            self.wait_for_prewarmed(runtime)
        fid = self.deploy(code, runtime=runtime, **spec)
        r = self.wisp.invoke(fid, {})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "success", r)
        out = r.json["response"]
        self.assertEqual(out["prewarmed"], prewarmed, "not the path this case is about")
        for what, secret in self.secrets().items():
            for path, text in out.items():
                if isinstance(text, str):
                    self.assertNotIn(secret, text, f"{path} shows {what} ({secret})")
        self.assertEqual(out["/proc/1/cmdline"].split(), ["wisp-init"])
        self.assertEqual(out["/proc/cmdline"], "", "the host kernel's command line is visible")
        # The code and the shims are there, from neutral paths on the launcher's stage.
        mountinfo = out["/proc/self/mountinfo"].splitlines()
        sources = {line.split()[4]: line.split()[3] for line in mountinfo}
        self.assertIn("/var/task", sources)
        self.assertRegex(sources["/var/task"], r"^/(trees/\d+|prewarm/[\w-]+)$")
        self.assertRegex(sources["/opt/wisp/runtime"], r"^/trees/\d+$")
        self.assert_host_clean()

    def test_python_cold_start(self):
        # 512 MB: not the prewarmed pool's size, so a sandbox of its own.
        self.look(LOOK_AROUND_PY, "python", prewarmed=False, memory_mb=512)

    def test_python_prewarmed(self):
        self.look(LOOK_AROUND_PY, "python", prewarmed=True)

    def test_node_prewarmed(self):
        self.look(LOOK_AROUND_NODE, "node", prewarmed=True)


if __name__ == "__main__":
    unittest.main()
