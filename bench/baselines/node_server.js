// The no-platform baseline for Node: the benchmark's handler behind a plain http.createServer.
// Parses the JSON body, takes its "event" member as wispd does, calls the handler, answers
// with the result. Listens on 127.0.0.1:<argv[2] or 0> and prints "PORT <n>" when ready.
'use strict';
const http = require('http');

async function handler(event) { return { ok: true, n: event.n }; }

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    let status = 200;
    let out;
    try {
      const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : {};
      const event = body && typeof body === 'object' && 'event' in body ? body.event : body;
      out = JSON.stringify(await handler(event));
    } catch (e) {
      status = 500;
      out = JSON.stringify({ errorType: e.name, errorMessage: e.message });
    }
    res.writeHead(status, {
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(out),
    });
    res.end(out);
  });
});
server.keepAliveTimeout = 60000;
server.listen(Number(process.argv[2] || 0), '127.0.0.1', () => {
  process.stdout.write(`PORT ${server.address().port}\n`);
});
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
