"""Data at rest (issue 10, finding 6): invocation records cannot fill the disk, and what wispd
stores is readable by its own user only.

A function that echoes multi-megabyte events many times must leave wisp.db within the node's
byte budget (`invocation_records_max_bytes`), its records cut to the per-field cap with the
original size noted, while each caller still gets the whole response. The data directory, the
code store directory and the databases (with their -wal and -shm files) must be owner-only, also
when an older wispd left them world-readable.
"""

import os
import sqlite3
import stat
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))

import wisp_fixture  # noqa: E402

BUDGET = 4 << 20         # the smallest budget worth testing: a few records of the cap's size
FIELD_CAP = 64 << 10     # wispd's default per-field cap
PAYLOAD = 2_500_000      # bytes of each event, echoed back as the response
CALLS = 60               # 300 MB of payloads; 7.7 MB of records at the cap
ECHO = "exports.handler = async (event) => event;\n"


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def pages_in_use(db_path):
    """The database's pages in use, in bytes, as a reader sees them while wispd runs."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
    finally:
        db.close()
    return (pages - free) * page_size


class DataAtRestTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        wisp_fixture.require_root()
        # What an older wispd (or a plain mkdir under umask 022) left: everything world-readable.
        cls.data_dir = tempfile.mkdtemp(prefix="wisp-at-rest-")
        os.chmod(cls.data_dir, 0o755)
        for name in ("wisp.db", "queue.db"):
            path = os.path.join(cls.data_dir, name)
            open(path, "wb").close()
            os.chmod(path, 0o644)
        cls.wisp = wisp_fixture.WispServer(data_dir=cls.data_dir, env={
            "WISP_INVOCATION_RECORDS_MAX_BYTES": str(BUDGET),
        })
        cls.wisp.start()

    @classmethod
    def tearDownClass(cls):
        cls.wisp.stop(check=False)
        cls.wisp.cleanup()
        import shutil
        shutil.rmtree(cls.data_dir, ignore_errors=True)

    def test_1_echoing_large_payloads_keeps_the_database_within_its_budget(self):
        fid = self.wisp.create(name="echo-large", runtime="node", code=ECHO)
        self.assertEqual(self.wisp.wait_state(fid)["state"], "ready")
        event = {"blob": "x" * PAYLOAD}
        for i in range(CALLS):
            event["i"] = i
            r = self.wisp.invoke(fid, event)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["status"], "success", r)
            # The caller gets the whole response: only the stored record is cut.
            self.assertEqual(len(r.json["response"]["blob"]), PAYLOAD)
            self.assertEqual(r.json["response"]["i"], i)

        logs = self.wisp.request("GET", f"/v1/functions/{fid}/logs?limit=1")  # flushes the writer
        self.assertEqual(logs.status, 200, logs)
        db_path = os.path.join(self.data_dir, "wisp.db")
        in_use = pages_in_use(db_path)
        self.assertLessEqual(in_use, BUDGET, f"{in_use} bytes of pages in use")
        # The file itself: pages in use plus the free pages kept for the next records (a tenth
        # of the budget) and what the WAL has not yet written back.
        self.assertLessEqual(os.path.getsize(db_path), BUDGET + BUDGET // 10 + (1 << 20))
        wal = db_path + "-wal"
        if os.path.exists(wal):
            self.assertLessEqual(os.path.getsize(wal), 20 << 20)  # journal_size_limit, a batch
        newest = logs.json["items"][0]
        self.assertTrue(newest.get("event_truncated"), sorted(newest))
        self.assertIsNone(newest["event"])
        self.assertGreater(newest["event_size"], PAYLOAD)
        self.assertLessEqual(len(newest["event_preview"].encode()), FIELD_CAP)
        self.assertTrue(newest["event_preview"].startswith('{"blob":"xxx'))
        self.assertTrue(newest["response_truncated"])
        self.assertIsNone(newest["response"])
        self.assertGreater(newest["response_size"], PAYLOAD)

        health = self.wisp.health()
        self.assertGreater(health.get("invocationRecordsEvicted", 0), 0, health)

    def test_2_the_data_dir_and_the_databases_are_owner_only(self):
        # wispd tightened what it found; a sandbox still runs code from the code store (test 1).
        # Nobody else may list, traverse or change the data dir (Go builds run in sandboxes, with
        # their directories bound in by the launcher as root).
        self.assertEqual(mode(self.data_dir), 0o700)
        self.assertEqual(mode(os.path.join(self.data_dir, "code")), 0o700)
        for name in ("wisp.db", "queue.db"):
            for suffix in ("", "-wal", "-shm"):
                path = os.path.join(self.data_dir, name + suffix)
                if os.path.exists(path):
                    self.assertEqual(mode(path), 0o600, f"{path}: {oct(mode(path))}")
        self.assertTrue(os.path.exists(os.path.join(self.data_dir, "wisp.db-wal")))

    def test_3_files_loosened_while_stopped_are_tightened_at_the_next_start(self):
        self.wisp.stop(check=False)
        os.chmod(self.data_dir, 0o755)
        os.chmod(os.path.join(self.data_dir, "code"), 0o755)
        for name in ("wisp.db", "queue.db"):
            for suffix in ("", "-wal", "-shm"):
                path = os.path.join(self.data_dir, name + suffix)
                if os.path.exists(path):
                    os.chmod(path, 0o644)
        self.wisp.start()
        self.assertEqual(mode(self.data_dir) & 0o066, 0)
        self.assertEqual(mode(os.path.join(self.data_dir, "code")), 0o700)
        for name in ("wisp.db", "queue.db"):
            for suffix in ("", "-wal", "-shm"):
                path = os.path.join(self.data_dir, name + suffix)
                if os.path.exists(path):
                    self.assertEqual(mode(path), 0o600, f"{path}: {oct(mode(path))}")


if __name__ == "__main__":
    unittest.main()
