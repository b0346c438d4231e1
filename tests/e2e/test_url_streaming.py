"""End-to-end: response streaming through function URLs. A Node handler wrapped in
awslambda.streamifyResponse writes to a response stream; the runtime posts it to wispd as a
chunked Runtime API response (Lambda-Runtime-Function-Response-Mode: streaming), and /fn/{name}
relays it to the client as chunked transfer as it arrives, with the status and headers of
awslambda.HttpResponseStream.from's prelude."""

import hashlib
import http.client
import unittest

from wisp_fixture import WispTestCase

# 1 MiB in 16 blocks of 64 KiB, each filled with its own letter. Half of it goes out, then the
# function pauses with the call still running, then the rest.
STREAMING = r'''
exports.handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  const out = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: 201,
    headers: { 'content-type': 'text/plain', 'x-streamed': 'yes' },
    cookies: ['flavour=plain'],
  });
  const write = (chunk) => new Promise((resolve) => {
    if (out.write(chunk)) resolve(); else out.once('drain', resolve);
  });
  for (let i = 0; i < 16; i++) {
    if (i === 8) await new Promise((resolve) => setTimeout(resolve, 3000));
    await write(Buffer.alloc(64 * 1024, 65 + i));
  }
  out.end();
});
'''

RAW = r'''
exports.handler = awslambda.streamifyResponse(async (event, responseStream) => {
  responseStream.write('plain ');
  responseStream.write('bytes');
  responseStream.end();
});
'''

FAILS_FIRST = r'''
exports.handler = awslambda.streamifyResponse(async () => {
  throw new Error('nothing to stream');
});
'''

EXPECTED = b"".join(bytes([65 + i]) * (64 * 1024) for i in range(16))


class UrlStreamingTest(WispTestCase):
    def url_function(self, code, name):
        fid = self.wisp.create(name=name, runtime="node", handler="index.handler", code=code)
        self.assertEqual(self.wisp.wait_state(fid, timeout=60)["state"], "ready")
        r = self.wisp.request("PUT", f"/v1/functions/{fid}/url", {"AuthType": "NONE"})
        self.assertEqual(r.status, 200, r)
        return fid

    def test_a_1mb_stream_arrives_intact_and_starts_before_the_function_ends(self):
        fid = self.url_function(STREAMING, "streamer")
        conn = http.client.HTTPConnection("127.0.0.1", self.wisp.port, timeout=60)
        conn.request("GET", "/fn/streamer/")
        resp = conn.getresponse()
        self.assertEqual(resp.status, 201)
        self.assertEqual(resp.getheader("transfer-encoding"), "chunked")
        self.assertEqual(resp.getheader("content-type"), "text/plain")
        self.assertEqual(resp.getheader("x-streamed"), "yes")
        self.assertIn("flavour=plain", resp.getheader("set-cookie"))
        first_half = resp.read(len(EXPECTED) // 2)
        self.assertEqual(first_half, EXPECTED[:len(EXPECTED) // 2])
        # Half the body is here while the call still runs: its instance is busy.
        states = [i["state"] for i in self.wisp.function(fid)["instances"]]
        self.assertIn("busy", states)
        rest = resp.read()
        conn.close()
        body = first_half + rest
        self.assertEqual(len(body), len(EXPECTED))
        self.assertEqual(hashlib.sha256(body).hexdigest(), hashlib.sha256(EXPECTED).hexdigest())

    def test_a_stream_without_a_prelude_is_an_octet_stream(self):
        fid = self.url_function(RAW, "raw-streamer")
        conn = http.client.HTTPConnection("127.0.0.1", self.wisp.port, timeout=60)
        conn.request("GET", "/fn/raw-streamer/")
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.getheader("content-type"), "application/octet-stream")
        self.assertEqual(resp.read(), b"plain bytes")
        conn.close()
        # A HEAD gets the head alone.
        conn = http.client.HTTPConnection("127.0.0.1", self.wisp.port, timeout=60)
        conn.request("HEAD", "/fn/raw-streamer/")
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.getheader("content-type"), "application/octet-stream")
        self.assertEqual(resp.read(), b"")
        conn.close()
        # Invoked directly, the streamed bytes are the result, a string.
        r = self.wisp.request("POST", f"/v1/functions/{fid}/invoke", {"event": {}})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["response"], "plain bytes")

    def test_a_stream_that_fails_before_its_first_byte_is_a_502(self):
        self.url_function(FAILS_FIRST, "failing-streamer")
        conn = http.client.HTTPConnection("127.0.0.1", self.wisp.port, timeout=60)
        conn.request("GET", "/fn/failing-streamer/")
        resp = conn.getresponse()
        self.assertEqual(resp.status, 502)
        self.assertIn(b"nothing to stream", resp.read())
        conn.close()


if __name__ == "__main__":
    unittest.main()
