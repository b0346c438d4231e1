"""The public HTTP port against slow and greedy clients (issue 10, finding 7; issue 11): a
request that has begun must finish its header, then its body, within deadlines (slowloris); one
client address holds a bounded number of connections; and a body over the limit gets its 413 even
when the client writes the whole body before reading (Python's http.client).

Runs its own wispd with short deadlines and a small per-client cap, so the cases are quick."""

import http.client
import os
import socket
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))

import wisp_fixture  # noqa: E402

HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 2.0
PER_CLIENT = 8
# How late a close may come after its deadline on this loaded 2-core machine.
MARGIN_S = 4.0


def connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def read_until_closed(sock, limit_s):
    """Reads until the server closes; returns (bytes read, seconds taken), or (bytes, None)
    when it was still open after `limit_s`."""
    sock.settimeout(0.1)
    start = time.monotonic()
    got = b""
    while time.monotonic() - start < limit_s:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return got, time.monotonic() - start
        if not chunk:
            return got, time.monotonic() - start
        got += chunk
    return got, None


class PublicPortTest(wisp_fixture.WispTestCase):
    server_env = {
        "WISP_HTTP_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT_S),
        "WISP_HTTP_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT_S),
        "WISP_HTTP_MAX_CONNECTIONS_PER_CLIENT": str(PER_CLIENT),
    }

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # The fixture's own keep-alive connection would take a place under the cap.
        cls.wisp._client.close()

    def test_slowloris_header_is_cut_off_at_the_deadline(self):
        sock = connect(self.wisp.port)
        self.addCleanup(sock.close)
        request = (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200)
        start = time.monotonic()
        closed_after = None
        # One byte every 100 ms: always something new, never a whole header.
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - start
                break
            sock.settimeout(0.1)
            try:
                answer = sock.recv(65536)
                if not answer or answer.startswith(b"HTTP/1.1 408"):
                    closed_after = time.monotonic() - start
                    break
            except socket.timeout:
                pass
            if time.monotonic() - start > HEADER_TIMEOUT_S + MARGIN_S:
                break
        self.assertIsNotNone(closed_after, "a header sent a byte at a time was never cut off")
        self.assertGreaterEqual(closed_after, HEADER_TIMEOUT_S * 0.9)
        self.assertLess(closed_after, HEADER_TIMEOUT_S + MARGIN_S)

    def test_slow_body_is_cut_off_at_the_deadline(self):
        sock = connect(self.wisp.port)
        self.addCleanup(sock.close)
        sock.sendall(b"POST /v1/functions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"na")
        got, took = read_until_closed(sock, BODY_TIMEOUT_S + MARGIN_S)
        self.assertIsNotNone(took, "a body that stopped coming was never cut off")
        self.assertTrue(got.startswith(b"HTTP/1.1 408"), got)

    def test_idle_keep_alive_connection_outlives_the_deadlines(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.wisp.port, timeout=10)
        self.addCleanup(conn.close)
        conn.request("GET", "/health")
        self.assertEqual(conn.getresponse().read() and 200, 200)
        time.sleep(HEADER_TIMEOUT_S + BODY_TIMEOUT_S + 0.5)  # idle, between requests
        conn.request("GET", "/health")
        r = conn.getresponse()
        r.read()
        self.assertEqual(r.status, 200)

    def test_connections_per_client_are_capped(self):
        held = []
        self.addCleanup(lambda: [s.close() for s in held])
        served = refused = 0
        for _ in range(PER_CLIENT + 4):
            sock = connect(self.wisp.port)
            held.append(sock)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            sock.settimeout(10)
            answer = b""
            try:
                answer = sock.recv(65536)
            except ConnectionResetError:
                pass
            if answer.startswith(b"HTTP/1.1 200"):
                served += 1
            else:
                self.assertTrue(answer == b"" or answer.startswith(b"HTTP/1.1 503"), answer)
                refused += 1
        self.assertLessEqual(served, PER_CLIENT)
        self.assertGreaterEqual(refused, 4)
        # Places free up as connections close.
        for sock in held:
            sock.close()
        held.clear()
        deadline = time.monotonic() + 5
        while True:
            probe = wisp_fixture.Client(self.wisp.port, timeout=5)
            try:
                if probe.request("GET", "/health").status == 200:
                    break
            except OSError:
                pass
            finally:
                probe.close()
            self.assertLess(time.monotonic(), deadline, "no place freed after closing")
            time.sleep(0.1)

    def test_body_over_the_limit_gets_its_413_with_http_client(self):
        # http.client writes the whole body before it reads the answer.
        conn = http.client.HTTPConnection("127.0.0.1", self.wisp.port, timeout=30)
        self.addCleanup(conn.close)
        body = b"x" * ((6 << 20) + (2 << 20))  # 8 MiB, over the 6 MiB default limit
        conn.request("POST", "/v1/functions/nope/invoke", body=body,
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        text = r.read()
        self.assertEqual(r.status, 413, text)
        self.assertIn(b"limit", text)


if __name__ == "__main__":
    unittest.main()
