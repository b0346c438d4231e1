"""Deployment packages the Lambda API tests upload: a Node app with node_modules and nested
folders, and every kind of malformed zip, each with the words the refusal must contain."""

import base64
import hashlib
import io
import stat
import zipfile

# What the SDK and CLI tests' function does: modules from node_modules and from a nested folder,
# the environment, a log line, a thrown error on request.
MAIN_JS = """
const pad = require('tiny-pad');
const {message} = require('../lib/message');
exports.handler = async (event) => {
  console.log('handling for ' + event.who);
  if (event.fail) throw new Error('asked to fail');
  return {message: message(event.who), padded: pad('42', 5), version: %d, event};
};
"""
MESSAGE_JS = "exports.message = (who) => `${process.env.GREETING} ${who}`;\n"
PAD_JS = "module.exports = (s, n) => String(s).padStart(n, '0');\n"


def add_symlink(archive, name, target):
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix: the mode bits below are read
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive.writestr(info, target)


def zip_bytes(files, links=None):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
        for name, target in (links or {}).items():
            add_symlink(archive, name, target)
    return out.getvalue()


def app_zip(version=1, padding=0):
    """The app, `padding` bytes of incompressible filler in node_modules (a package's size)."""
    files = {
        "src/handlers/main.js": MAIN_JS % version,
        "src/lib/message.js": MESSAGE_JS,
        "node_modules/tiny-pad/package.json": '{"name": "tiny-pad", "main": "lib/index.js"}',
        "node_modules/tiny-pad/lib/index.js": PAD_JS,
    }
    if padding:
        import os
        files["node_modules/filler/blob.bin"] = os.urandom(padding)
    return zip_bytes(files, {"node_modules/.bin/tiny-pad": "../tiny-pad/lib/index.js"})


def lambda_sha256(data):
    """Lambda's CodeSha256: base64 of the SHA-256 of the zip as uploaded."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def bad_zips(max_unzipped_bytes, max_entries):
    """{file name: (bytes, a regular expression the refusal's message matches)}."""
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("index.js", "exports.handler = async () => 1;\n")
        archive.writestr("zeros.bin", b"\0" * (max_unzipped_bytes + (1 << 20)))
    return {
        "not-a-zip.zip": (b"this is a text file, not a zip\n" * 4, "not a readable zip"),
        "empty.zip": (zip_bytes({}), "no entries"),
        "zip-slip.zip": (zip_bytes({"index.js": "x", "../../evil.js": "x"}), r"\.\."),
        "absolute-path.zip": (zip_bytes({"index.js": "x", "/etc/evil.js": "x"}), "absolute"),
        "symlink-absolute.zip": (zip_bytes({"index.js": "x"}, {"passwd": "/etc/passwd"}),
                                 "absolute path"),
        "symlink-out.zip": (zip_bytes({"index.js": "x"}, {"lib/up": "../../outside"}),
                            "outside the package"),
        "zip-bomb.zip": (bomb.getvalue(), "exceeds the limit"),
        "too-many-entries.zip": (zip_bytes({f"f{i}.js": "" for i in range(max_entries + 1)}),
                                 "more than .* entries"),
        "truncated.zip": (app_zip()[:-40], "zip"),
    }
