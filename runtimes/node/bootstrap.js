'use strict';
// Wisp Node.js runtime shim.
//
// Runs inside a sandbox as `/usr/bin/node /opt/wisp/runtime/node/bootstrap.js`. It loads the
// user's handler, then loops on the AWS Lambda Runtime API served by wispd at
// $AWS_LAMBDA_RUNTIME_API: GET /next, run the handler, POST /response or /error. The Runtime
// API is the only channel to wispd; stdout/stderr belong to the user's function.
//
// Performance: this is the hot path of every warm invoke, so it speaks HTTP/1.1 itself over one
// keep-alive TCP connection (TCP_NODELAY) instead of going through the `http` module and its
// agent. Requests are strictly sequential, so the client keeps one pending request at a time.
//
// Several calls at once (AWS_LAMBDA_MAX_CONCURRENCY > 1, the function's instance_concurrency):
// that many loops run side by side in the one event loop, sharing one connection (wispd's
// channel) over which requests are pipelined: the events of several calls come in one read,
// their results go out in one write. An I/O-bound handler serves that many calls at once. Each call runs in an AsyncLocalStorage context; every line it writes to stdout
// or stderr starts with "\x1f<request id>\x1f", by which wispd gives each call its own lines.
//
// Nothing of this file is visible to user code: the user module is compiled with
// vm.compileFunction and sees only the usual CommonJS wrapper parameters and globals.

const net = require('net');
const vm = require('vm');
const fs = require('fs');
const path = require('path');
const Module = require('module');
const { AsyncLocalStorage } = require('async_hooks');

const kApiPrefix = '/2018-06-01/runtime';
// Longest response head we accept; a Runtime API head is a few hundred bytes.
const kMaxHeadBytes = 64 * 1024;
// The one buffer every read lands in has libuv's default read size; bigger events take several
// reads.
const kReadBufferBytes = 64 * 1024;
// Used when wispd sends no usable deadline: Lambda's maximum timeout (15 minutes).
const kFallbackTimeoutMs = 15 * 60 * 1000;
const kCrlfCrlf = Buffer.from('\r\n\r\n');
const kThisFile = __filename;

const env = process.env;
// The function's identity; a prewarmed instance learns it only when it is specialised.
let kFunctionName;
let kFunctionVersion;
let kMemorySize;
let kLogGroupName;
let kLogStreamName;
let kProjectId;
let kNameInProject;
function readFunctionIdentity() {
  kFunctionName = env.AWS_LAMBDA_FUNCTION_NAME;
  // A project's function (the Vercel-style API): its context names the project and the function
  // by its name in the project; its global name stays in invokedFunctionArn.
  kProjectId = env.WISP_PROJECT_ID || undefined;
  kNameInProject = kProjectId && kFunctionName && kFunctionName.startsWith(`${kProjectId}--`)
    ? kFunctionName.slice(kProjectId.length + 2) : kFunctionName;
  kFunctionVersion = env.AWS_LAMBDA_FUNCTION_VERSION;
  kMemorySize = env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE;
  kLogGroupName = env.AWS_LAMBDA_LOG_GROUP_NAME;
  kLogStreamName = env.AWS_LAMBDA_LOG_STREAM_NAME;
}
readFunctionIdentity();

// ---------------------------------------------------------------------------------------------
// Minimal HTTP/1.1 client: one persistent connection, one request in flight at a time.

function parseHostPort(spec) {
  if (!spec) return null;
  let host;
  let port;
  if (spec.startsWith('[')) {
    const end = spec.indexOf(']');
    host = spec.slice(1, end);
    port = spec.slice(end + 2);
  } else {
    const colon = spec.lastIndexOf(':');
    if (colon < 0) return { host: spec, port: 80 };
    host = spec.slice(0, colon);
    port = spec.slice(colon + 1);
  }
  port = Number(port);
  if (!host || !Number.isInteger(port) || port <= 0 || port > 65535) return null;
  return { host, port };
}

// A response, with the headers the runtime acts on; other headers are skipped.
class HttpResponse {
  constructor(status) {
    this.status = status;
    this.body = ''; // decoded as UTF-8
    this.connection = undefined;
    this.contentLength = undefined;
    this.transferEncoding = undefined;
    this.requestId = undefined;
    this.deadlineMs = undefined;
    this.invokedFunctionArn = undefined;
    this.traceId = undefined;
    this.clientContext = undefined;
    this.cognitoIdentity = undefined;
    this.wispSpecialize = undefined;
  }
}

function isBlank(charCode) {
  return charCode === 32 || charCode === 9;
}

// text[start, end) without the optional whitespace (SP, HTAB) that HTTP allows around names
// and values.
function trimmedSlice(text, start, end) {
  while (start < end && isBlank(text.charCodeAt(start))) start++;
  while (end > start && isBlank(text.charCodeAt(end - 1))) end--;
  return text.slice(start, end);
}

// head: latin1 string without the final CRLFCRLF. Scans it in place and keeps only the headers
// the runtime reads: splitting it into lines and keying every header by its lower-cased name
// cost twice as much. A repeated header keeps its last value.
function parseHead(head) {
  const status = parseInt(head.slice(9, 12), 10);
  if (!head.startsWith('HTTP/1.') || !(status >= 100 && status < 600)) {
    throw new Error(`bad status line: ${head.split('\r\n', 1)[0].slice(0, 80)}`);
  }
  const res = new HttpResponse(status);
  let lineEnd = head.indexOf('\r\n');
  while (lineEnd >= 0) {
    const lineStart = lineEnd + 2;
    lineEnd = head.indexOf('\r\n', lineStart);
    const end = lineEnd < 0 ? head.length : lineEnd;
    const colon = head.indexOf(':', lineStart);
    if (colon <= lineStart || colon >= end) continue;
    const value = trimmedSlice(head, colon + 1, end);
    switch (trimmedSlice(head, lineStart, colon).toLowerCase()) {
      case 'connection': res.connection = value; break;
      case 'content-length': res.contentLength = value; break;
      case 'transfer-encoding': res.transferEncoding = value; break;
      case 'lambda-runtime-aws-request-id': res.requestId = value; break;
      case 'lambda-runtime-deadline-ms': res.deadlineMs = value; break;
      case 'lambda-runtime-invoked-function-arn': res.invokedFunctionArn = value; break;
      case 'lambda-runtime-trace-id': res.traceId = value; break;
      case 'lambda-runtime-client-context': res.clientContext = value; break;
      case 'lambda-runtime-cognito-identity': res.cognitoIdentity = value; break;
      case 'lambda-runtime-wisp-specialize': res.wispSpecialize = value; break;
    }
  }
  return res;
}

class RuntimeClient {
  // channelFd: wispd's Unix-socket channel, already connected, or null. The first connection
  // uses it (cheaper than loopback TCP per message); should it ever close, the client
  // reconnects over TCP.
  constructor(host, port, channelFd) {
    this.host_ = host;
    this.port_ = port;
    this.channelFd_ = channelFd;
    this.hostHeader_ = `Host: ${host.includes(':') ? `[${host}]` : host}:${port}\r\n`;
    this.nextRequest_ = `GET ${kApiPrefix}/invocation/next HTTP/1.1\r\n${this.hostHeader_}\r\n`;
    // Every read of every connection lands here, so nothing may keep a view of it: the parser
    // copies out what outlives a read and decodes bodies before it returns.
    this.readBuffer_ = Buffer.allocUnsafe(kReadBufferBytes);
    this.sock_ = null;
    this.pending_ = null; // {resolve, reject, request, retried}
    // Pipelined (see pipeline()): what each request sent waits for, in order, and the requests
    // of this turn of the event loop not written yet.
    this.pipelined_ = false;
    this.waiting_ = [];
    this.outgoing_ = [];
    this.resetParser_();
  }

  // From now on requests go out as soon as they are made, without waiting for the answers
  // before them: several loops share the connection (several calls at once). Requests made in
  // one turn of the event loop go out in one write; answers come back in order.
  pipeline() {
    this.pipelined_ = true;
  }

  send_(request, entries) {
    for (const entry of entries) this.waiting_.push(entry);
    this.outgoing_.push(request);
    if (this.outgoing_.length > 1) return;
    process.nextTick(() => {
      const batch = this.outgoing_.length === 1 ? this.outgoing_[0] : this.outgoing_.join('');
      this.outgoing_ = [];
      if (this.sock_ === null) this.connect_();
      this.sock_.write(batch);
    });
  }

  resetParser_() {
    // Copy of the bytes a read left over: a head or chunk it cut short, or the body so far when
    // the connection's end delimits it.
    this.unparsed_ = null;
    this.res_ = null; // response whose head has been parsed
    this.bodyLen_ = -1; // Content-Length of res_, -1 when not known
    this.body_ = null; // body of a known length being filled across reads
    this.bodyFill_ = 0;
    this.chunks_ = null; // chunked transfer: copies of the chunk payloads
    this.untilClose_ = false; // body delimited by connection close
  }

  connect_() {
    // onread hands each read to the parser in the reused buffer: no allocation per read and
    // none of the stream machinery that 'data' events go through.
    const onread = {
      buffer: this.readBuffer_,
      callback: (length, buffer) => {
        this.onRead_(sock, buffer, length);
      },
    };
    let sock;
    if (this.channelFd_ !== null) {
      sock = new net.Socket({ fd: this.channelFd_, readable: true, writable: true, onread });
      this.channelFd_ = null;
    } else {
      sock = net.connect({ host: this.host_, port: this.port_, noDelay: true, onread });
    }
    sock.setNoDelay(true);
    sock.on('error', (err) => this.onClose_(sock, err));
    sock.on('close', () => this.onClose_(sock, null));
    sock.on('end', () => this.onClose_(sock, null));
    this.sock_ = sock;
    this.resetParser_();
  }

  // request: the complete request as a string (head + body). Resolves with an HttpResponse.
  request(request) {
    return new Promise((resolve, reject) => {
      if (this.pipelined_) return this.send_(request, [{ resolve, reject }]);
      this.pending_ = { resolve, reject, request, retried: false };
      if (this.sock_ === null) this.connect_();
      this.sock_.write(request);
    });
  }

  onClose_(sock, err) {
    if (sock !== this.sock_) return;
    this.sock_ = null;
    sock.destroy();
    if (this.pipelined_) {
      // Which of the requests in line wispd saw is unknown: none can be resent safely. Ending
      // ends the instance; wispd fails the calls in flight on it.
      process.stderr.write(`wisp runtime: the Runtime API connection closed: ${err || 'EOF'}\n`);
      process.exit(1);
    }
    const p = this.pending_;
    if (p === null) return;
    if (this.untilClose_ && this.res_ !== null && err === null) {
      // Body delimited by the end of the connection.
      const res = this.res_;
      res.body = this.unparsed_.toString('utf8');
      this.resetParser_();
      this.complete_(res);
      return;
    }
    this.resetParser_();
    if (!p.retried) {
      // The connection dropped (e.g. an idle keep-alive connection the server closed):
      // reconnect once and resend.
      p.retried = true;
      this.connect_();
      this.sock_.write(p.request);
      return;
    }
    this.pending_ = null;
    p.reject(err || new Error('connection to the Runtime API closed'));
  }

  complete_(res) {
    if (this.pipelined_) {
      const waiting = this.waiting_.shift();
      if (waiting === undefined) return;
      if (waiting.what !== undefined) checkPostStatus(res, waiting.what);
      else waiting.resolve(res);
      return;
    }
    const p = this.pending_;
    const closing = res.connection === 'close' && this.sock_ !== null;
    if (closing) {
      const sock = this.sock_;
      this.sock_ = null;
      sock.destroy();
      this.resetParser_();
    }
    if (p !== null && p.skip > 0) {
      // The answer to a pipelined POST: check it; the caller waits for the request after it.
      p.skip -= 1;
      p.request = p.tail; // a reconnect now resends only what is still unanswered
      checkPostStatus(res, p.what);
      if (closing) {
        this.connect_();
        this.sock_.write(p.request);
      }
      return;
    }
    this.pending_ = null;
    if (p !== null) p.resolve(res);
  }

  fail_(err) {
    if (this.pipelined_) {
      process.stderr.write(`wisp runtime: Runtime API: ${err}\n`);
      process.exit(1);
    }
    const sock = this.sock_;
    this.sock_ = null;
    if (sock) sock.destroy();
    this.resetParser_();
    const p = this.pending_;
    this.pending_ = null;
    if (p) p.reject(err);
  }

  onRead_(sock, buffer, length) {
    if (sock !== this.sock_) return;
    try {
      this.parse_(sock, buffer, length);
    } catch (err) {
      this.fail_(err);
    }
  }

  // Parses buf[0, end): the bytes of one read, which continue those of the reads before. What
  // buf holds from end on is stale, so every search checks that its match ends by end.
  parse_(sock, buf, end) {
    let pos = 0;
    if (this.body_ !== null) {
      // The body of a known length is being filled across reads.
      const n = Math.min(end, this.bodyLen_ - this.bodyFill_);
      buf.copy(this.body_, this.bodyFill_, 0, n);
      this.bodyFill_ += n;
      if (this.bodyFill_ < this.bodyLen_) return;
      const res = this.res_;
      res.body = this.body_.toString('utf8');
      this.resetParser_();
      this.complete_(res);
      if (n === end || this.sock_ !== sock) return;
      pos = n;
    } else if (this.untilClose_) {
      this.unparsed_ = Buffer.concat([this.unparsed_, buf.subarray(0, end)]);
      return;
    } else if (this.unparsed_ !== null) {
      buf = Buffer.concat([this.unparsed_, buf.subarray(0, end)]);
      end = buf.length;
      this.unparsed_ = null;
    }
    for (;;) {
      if (this.res_ === null) {
        const headEnd = buf.indexOf(kCrlfCrlf, pos);
        if (headEnd < 0 || headEnd + 4 > end) {
          if (end - pos > kMaxHeadBytes) throw new Error('response head too large');
          this.keepUnparsed_(buf, pos, end);
          return;
        }
        const res = parseHead(buf.latin1Slice(pos, headEnd));
        pos = headEnd + 4;
        if (res.status >= 100 && res.status < 200) continue; // interim response
        this.res_ = res;
        const te = res.transferEncoding;
        const cl = res.contentLength;
        if (te !== undefined && te.toLowerCase().includes('chunked')) {
          this.chunks_ = [];
        } else if (cl !== undefined) {
          this.bodyLen_ = parseInt(cl, 10);
          if (!(this.bodyLen_ >= 0)) throw new Error(`bad Content-Length: ${cl}`);
        } else if (res.status === 204 || res.status === 304) {
          this.bodyLen_ = 0;
        } else {
          this.untilClose_ = true;
        }
      }
      const res = this.res_;
      if (this.chunks_ !== null) {
        pos = this.parseChunks_(res, buf, pos, end);
        if (pos < 0) return;
      } else if (this.untilClose_) {
        this.unparsed_ = Buffer.from(buf.subarray(pos, end));
        return;
      } else {
        const need = this.bodyLen_;
        if (end - pos < need) {
          // The body spans reads: collect it in one buffer of its final size.
          this.body_ = Buffer.allocUnsafe(need);
          this.bodyFill_ = buf.copy(this.body_, 0, pos, end);
          return;
        }
        res.body = buf.toString('utf8', pos, pos + need);
        pos += need;
      }
      this.resetParser_();
      this.complete_(res);
      if (pos === end || this.sock_ !== sock) return;
      // Extra bytes with no request outstanding would be a server bug; keep parsing them so
      // that the framing stays right.
    }
  }

  // Chunked transfer coding: consumes every complete chunk of buf[pos, end). Returns where the
  // message after the last chunk starts, or -1 when the body continues in a later read.
  parseChunks_(res, buf, pos, end) {
    for (;;) {
      const lineEnd = buf.indexOf('\r\n', pos);
      if (lineEnd < 0 || lineEnd + 2 > end) {
        this.keepUnparsed_(buf, pos, end);
        return -1;
      }
      const size = parseInt(buf.latin1Slice(pos, lineEnd), 16);
      if (!(size >= 0)) throw new Error('bad chunk size');
      if (size === 0) {
        // Last chunk, then optional trailers, then an empty line.
        let after;
        if (lineEnd + 4 <= end && buf[lineEnd + 2] === 13 && buf[lineEnd + 3] === 10) {
          after = lineEnd + 4;
        } else {
          const trailersEnd = buf.indexOf(kCrlfCrlf, lineEnd);
          if (trailersEnd < 0 || trailersEnd + 4 > end) {
            this.keepUnparsed_(buf, pos, end);
            return -1;
          }
          after = trailersEnd + 4;
        }
        res.body = Buffer.concat(this.chunks_).toString('utf8');
        return after;
      }
      const dataStart = lineEnd + 2;
      if (end < dataStart + size + 2) {
        this.keepUnparsed_(buf, pos, end);
        return -1;
      }
      this.chunks_.push(Buffer.from(buf.subarray(dataStart, dataStart + size)));
      pos = dataStart + size + 2;
    }
  }

  keepUnparsed_(buf, pos, end) {
    if (pos < end) this.unparsed_ = Buffer.from(buf.subarray(pos, end));
  }

  postRequest_(pathSuffix, body, errorType) {
    const len = Buffer.byteLength(body);
    let head = `POST ${kApiPrefix}${pathSuffix} HTTP/1.1\r\n${this.hostHeader_}` +
        `Content-Type: application/json\r\nContent-Length: ${len}\r\n`;
    if (errorType !== undefined) head += `Lambda-Runtime-Function-Error-Type: ${errorType}\r\n`;
    return `${head}\r\n${body}`;
  }

  post(pathSuffix, body, errorType) {
    return this.request(this.postRequest_(pathSuffix, body, errorType));
  }

  // Posts a result and asks for the next event in one write: the runtime does not wait for the
  // 202 before asking for more, which saves a round trip per invocation. Resolves with the
  // /next response.
  postThenNext(pathSuffix, body, what) {
    const next = this.nextRequest_;
    const request = this.postRequest_(pathSuffix, body) + next;
    return new Promise((resolve, reject) => {
      if (this.pipelined_) return this.send_(request, [{ what }, { resolve, reject }]);
      this.pending_ = { resolve, reject, request, tail: next, skip: 1, what, retried: false };
      if (this.sock_ === null) this.connect_();
      this.sock_.write(request);
    });
  }

  next() {
    return this.request(this.nextRequest_);
  }

  // Lambda's response streaming: the head now, then each write() a chunk; end() sends the last
  // chunk and resolves with the answer (202).
  startStream(pathSuffix, contentType) {
    if (this.sock_ === null) this.connect_();
    const sock = this.sock_;
    const answered = new Promise((resolve, reject) => {
      // Not resent on a new connection: the body is gone.
      this.pending_ = { resolve, reject, request: '', retried: true };
    });
    sock.write(`POST ${kApiPrefix}${pathSuffix} HTTP/1.1\r\n${this.hostHeader_}` +
        `Content-Type: ${contentType}\r\nLambda-Runtime-Function-Response-Mode: streaming\r\n` +
        'Transfer-Encoding: chunked\r\n\r\n');
    return {
      sock,
      write(chunk) {
        if (chunk.length === 0) return true;
        sock.write(`${chunk.length.toString(16)}\r\n`);
        sock.write(chunk);
        return sock.write('\r\n');
      },
      end() {
        sock.write('0\r\n\r\n');
        return answered;
      },
    };
  }
}

// ---------------------------------------------------------------------------------------------
// Errors

// Header values must be a single line of visible ASCII.
function headerSafe(s) {
  return String(s).replace(/[^\x20-\x7e]/g, '').slice(0, 200) || 'Error';
}

function errorTypeOf(err) {
  if (err instanceof Error ||
      (err !== null && typeof err === 'object' && typeof err.name === 'string')) {
    let name = typeof err.name === 'string' && err.name ? err.name : 'Error';
    // `class MyError extends Error {}` keeps name "Error"; report the class instead.
    const ctorName = err.constructor && err.constructor.name;
    if (name === 'Error' && typeof ctorName === 'string' && ctorName && ctorName !== 'Object') {
      name = ctorName;
    }
    return name;
  }
  return 'Error';
}

function stackLinesOf(err) {
  if (!(err !== null && typeof err === 'object' && typeof err.stack === 'string')) return [];
  const lines = err.stack.split('\n');
  const out = [];
  for (const line of lines) {
    const t = line.trim();
    if (!t.startsWith('at ')) continue; // message lines
    if (t.includes(kThisFile)) continue; // frames of this shim
    out.push(t);
  }
  return out;
}

function messageOf(err) {
  if (err instanceof Error) return String(err.message);
  if (err !== null && typeof err === 'object' && 'message' in err) return String(err.message);
  try {
    return String(err);
  } catch (e) {
    return Object.prototype.toString.call(err);
  }
}

function errorPayload(errorType, errorMessage, stackTrace) {
  return JSON.stringify({ errorMessage, errorType, stackTrace });
}

// Prints the error as AWS does, so it shows in the function's logs (without the shim's frames).
function logErrorToStderr(err) {
  let text;
  if (err !== null && typeof err === 'object' && typeof err.stack === 'string') {
    text = err.stack.split('\n').filter((line) => !line.includes(kThisFile)).join('\n');
  } else {
    text = `${errorTypeOf(err)}: ${messageOf(err)}`;
  }
  process.stderr.write(`${text}\n`);
}

// ---------------------------------------------------------------------------------------------
// Loading the user's module

class InitError extends Error {
  constructor(errorType, message, stackTrace) {
    super(message);
    this.errorType = errorType;
    this.stackTrace = stackTrace || [];
  }
}

const kReserved = new Set(('break case catch class const continue debugger default delete do ' +
    'else enum export extends false finally for function if import in instanceof new null ' +
    'return super switch this throw true try typeof var void while with yield let static ' +
    'implements interface package private protected public await arguments eval undefined')
    .split(' '));

function isIdentifier(name) {
  return /^[A-Za-z_$][\w$]*$/.test(name) && !kReserved.has(name);
}

// Keeps the newlines of `text` so that rewriting never moves a line.
function newlinesOf(text) {
  const n = text.split('\n').length - 1;
  return n > 0 ? '\n'.repeat(n) : '';
}

function importSpecToPattern(spec) {
  // "{ a, b as c }" -> "{ a, b: c }"; newlines kept.
  return spec.replace(/\bas\b/g, ':');
}

// Rewrites ESM syntax to CommonJS in place, never changing the line of any token. Returns the
// new source and the list of [exportedName, localName] pairs to assign at the end.
function rewriteEsm(src) {
  if (!/^[ \t]*(export|import)\b/m.test(src) && !src.includes('import.meta')) {
    return { src, exportPairs: [] };
  }
  const exportPairs = [];
  let out = src;
  // import ... from '...'
  out = out.replace(
      /^([ \t]*)import[ \t]+([\w$]+)?[ \t]*,?[ \t]*(\*[ \t]*as[ \t]+[\w$]+|\{[^}]*\})?[ \t]*from[ \t]*(['"])([^'"\n]+)\4[ \t]*;?/gm,
      (m, ws, def, rest, q, spec) => {
        const req = `require(${JSON.stringify(spec)})`;
        let decl;
        if (def && rest) {
          const restPat = rest.startsWith('*') ?
              rest.replace(/^\*[ \t]*as[ \t]+/, '') : importSpecToPattern(rest);
          decl = `const ${def} = ${req}, ${restPat} = ${def};`;
        } else if (def) {
          decl = `const ${def} = ${req};`;
        } else if (rest && rest.startsWith('*')) {
          decl = `const ${rest.replace(/^\*[ \t]*as[ \t]+/, '')} = ${req};`;
        } else if (rest) {
          decl = `const ${importSpecToPattern(rest)} = ${req};`;
        } else {
          return m;
        }
        return ws + decl.replace(/\n/g, ' ') + newlinesOf(m);
      });
  // import 'side-effect';
  out = out.replace(/^([ \t]*)import[ \t]*(['"])([^'"\n]+)\2[ \t]*;?/gm,
      (m, ws, q, spec) => `${ws}require(${JSON.stringify(spec)});`);
  // export { a, b as c } [from '...'];
  out = out.replace(
      /^([ \t]*)export[ \t]*\{([^}]*)\}(?:[ \t]*from[ \t]*(['"])([^'"\n]+)\3)?[ \t]*;?/gm,
      (m, ws, list, q, spec) => {
        for (const item of list.split(',')) {
          const t = item.trim();
          if (!t) continue;
          const parts = t.split(/\s+as\s+/);
          const local = parts[0].trim();
          const exported = (parts[1] || parts[0]).trim();
          if (spec !== undefined) {
            const source = `require(${JSON.stringify(spec)})[${JSON.stringify(local)}]`;
            exportPairs.push([exported, source]);
          } else if (isIdentifier(local)) {
            exportPairs.push([exported, local]);
          }
        }
        return ws + newlinesOf(m);
      });
  // export * from '...';
  out = out.replace(/^([ \t]*)export[ \t]*\*[ \t]*from[ \t]*(['"])([^'"\n]+)\2[ \t]*;?/gm,
      (m, ws, q, spec) => `${ws}Object.assign(exports, require(${JSON.stringify(spec)}));`);
  // export default <expr|function|class>
  out = out.replace(/^([ \t]*)export[ \t]+default[ \t]+/gm, (m, ws) => `${ws}exports.default = `);
  // export [async] function[*] name / export class name
  out = out.replace(
      /^([ \t]*)export[ \t]+((?:async[ \t]+)?function\b[ \t]*\*?[ \t]*([\w$]+)|class[ \t]+([\w$]+))/gm,
      (m, ws, decl, fname, cname) => {
        const name = fname || cname;
        exportPairs.push([name, name]);
        return `${ws}${decl}`;
      });
  // export const|let|var name = ...
  out = out.replace(/^([ \t]*)export[ \t]+(const|let|var)[ \t]+([\w$]+)/gm,
      (m, ws, kind, name) => {
        exportPairs.push([name, name]);
        return `${ws}${kind} ${name}`;
      });
  out = out.replace(/\bimport\.meta\b/g,
      '({url: require("url").pathToFileURL(__filename).href, ' +
      'filename: __filename, dirname: __dirname})');
  return { src: out, exportPairs };
}

const kWrapperParams = ['exports', 'require', 'module', '__filename', '__dirname'];

let importWarningFiltered = false;

// Lets user code call import() with Node's default loader. Node 20 flags this option as
// experimental on first use; that notice is the shim's business, not the function's logs.
function dynamicImportOption() {
  const c = vm.constants;
  if (!(c && c.USE_MAIN_CONTEXT_DEFAULT_LOADER)) return {};
  if (!importWarningFiltered) {
    importWarningFiltered = true;
    const emitWarning = process.emitWarning;
    process.emitWarning = function (warning, ...rest) {
      const text = typeof warning === 'string' ? warning : warning && warning.message;
      if (typeof text === 'string' && text.includes('USE_MAIN_CONTEXT_DEFAULT_LOADER')) return;
      return emitWarning.call(this, warning, ...rest);
    };
  }
  return { importModuleDynamically: c.USE_MAIN_CONTEXT_DEFAULT_LOADER };
}

function compileUser(src, filename, isAsync) {
  if (!isAsync) {
    return vm.compileFunction(src, kWrapperParams, { filename, ...dynamicImportOption() });
  }
  // Top-level await: an async wrapper; its head stays on line 1 so line numbers hold.
  const script = new vm.Script(`(async function (${kWrapperParams.join(', ')}) {${src}\n})`,
      { filename, ...dynamicImportOption() });
  return script.runInThisContext();
}

// "file:line" from a decorated V8 SyntaxError stack ("/path/index.js:3\n<code>\n  ^\n\n...").
function syntaxLocation(err, fallbackFile) {
  const stack = typeof err.stack === 'string' ? err.stack : '';
  const m = /^(.*):(\d+)\n/.exec(stack);
  if (m) return { file: path.basename(m[1]), line: Number(m[2]) };
  return { file: path.basename(fallbackFile), line: 0 };
}

function syntaxInitError(err, filename, lineCount) {
  const loc = syntaxLocation(err, filename);
  if (lineCount !== undefined && loc.line > lineCount) loc.line = lineCount;
  const where = loc.line ? `${loc.file}:${loc.line}` : loc.file;
  return new InitError('Runtime.UserCodeSyntaxError', `SyntaxError: ${err.message} (${where})`, []);
}

function findModuleFile(taskRoot, modPath) {
  for (const ext of ['.js', '.mjs', '.cjs']) {
    const file = path.join(taskRoot, modPath + ext);
    let st;
    try {
      st = fs.statSync(file);
    } catch (e) {
      continue;
    }
    if (st.isFile()) return file;
  }
  return null;
}

function dig(obj, parts, from) {
  for (let i = from; i < parts.length; i++) {
    if (obj === null || obj === undefined) return undefined;
    obj = obj[parts[i]];
  }
  return obj;
}

// Whether Node itself treats `filename` as an ES module: a .mjs file, or a .js file whose nearest
// package.json (up to the task root) says "type": "module". Such files (packages of several
// modules importing each other) load through Node's own ESM loader; a single CommonJS or
// export-syntax file keeps the in-place rewrite below, which also finds undeclared handlers.
function isEsModuleFile(filename, taskRoot) {
  if (filename.endsWith('.mjs')) return true;
  if (!filename.endsWith('.js')) return false;
  for (let dir = path.dirname(filename); ; dir = path.dirname(dir)) {
    let text = null;
    try {
      text = fs.readFileSync(path.join(dir, 'package.json'), 'utf8');
    } catch (e) {
      text = null;
    }
    if (text !== null) {
      try {
        return JSON.parse(text).type === 'module';
      } catch (e) {
        return false; // Node refuses a broken package.json itself; the rewrite reports more
      }
    }
    if (dir === taskRoot || dir.length <= taskRoot.length || dir === path.dirname(dir)) {
      return false;
    }
  }
}

async function loadEsModuleHandler(filename, handlerSpec, fnParts) {
  let namespace;
  try {
    namespace = await import(require('url').pathToFileURL(filename).href);
  } catch (err) {
    if (err instanceof SyntaxError) throw syntaxInitError(err, filename);
    const first = messageOf(err).split('\n')[0];
    throw new InitError('Runtime.ImportModuleError', `${errorTypeOf(err)}: ${first}`,
        stackLinesOf(err));
  }
  let handler = dig(namespace, fnParts, 0);
  const def = namespace.default;
  if (typeof handler !== 'function' && def !== null && def !== undefined) {
    handler = typeof def === 'function' && fnParts.length === 1 && !(fnParts[0] in namespace) ?
        def : dig(def, fnParts, 0);
  }
  if (typeof handler !== 'function') {
    throw new InitError('Runtime.HandlerNotFound', dig(namespace, fnParts, 0) !== undefined ?
        `${handlerSpec} is not a function` : `${handlerSpec} is undefined or not exported`);
  }
  return handler;
}

async function loadHandler() {
  const handlerSpec = env._HANDLER || '';
  const taskRoot = env.LAMBDA_TASK_ROOT || '/var/task';
  const lastSlash = handlerSpec.lastIndexOf('/');
  const dot = handlerSpec.indexOf('.', lastSlash + 1);
  if (dot <= lastSlash + 1 || dot === handlerSpec.length - 1) {
    throw new InitError('Runtime.MalformedHandlerName',
        `Bad handler ${JSON.stringify(handlerSpec)}: expected <module>.<function>`);
  }
  const modPath = handlerSpec.slice(0, dot);
  const fnPath = handlerSpec.slice(dot + 1);
  const fnParts = fnPath.split('.');
  if (path.isAbsolute(modPath) || modPath.includes('..') || modPath.includes('\0') ||
      fnParts.some((p) => p === '')) {
    throw new InitError('Runtime.MalformedHandlerName',
        `Bad handler ${JSON.stringify(handlerSpec)}: the module path must be relative to the ` +
        'task root without ".."');
  }

  const filename = findModuleFile(taskRoot, modPath);
  if (filename === null) {
    throw new InitError('Runtime.ImportModuleError',
        `Error: Cannot find module '${modPath}' (no ${modPath}.js, .mjs or .cjs in ${taskRoot})`);
  }
  let realFile;
  let realRoot;
  try {
    realFile = fs.realpathSync(filename);
    realRoot = fs.realpathSync(taskRoot);
  } catch (e) {
    throw new InitError('Runtime.ImportModuleError', `Error: ${e.message}`, stackLinesOf(e));
  }
  if (!realFile.startsWith(realRoot.endsWith('/') ? realRoot : `${realRoot}/`)) {
    throw new InitError('Runtime.ImportModuleError',
        `Error: module '${modPath}' resolves outside the task root`);
  }

  if (isEsModuleFile(filename, path.resolve(taskRoot))) {
    return loadEsModuleHandler(filename, handlerSpec, fnParts);
  }

  let source;
  try {
    source = fs.readFileSync(filename, 'utf8');
  } catch (e) {
    throw new InitError('Runtime.ImportModuleError', `Error: ${e.message}`, stackLinesOf(e));
  }
  if (source.charCodeAt(0) === 0xfeff) source = source.slice(1);
  const lineCount = source.split('\n').length;

  const rewritten = rewriteEsm(source);
  const captureName = isIdentifier(fnParts[0]) ? fnParts[0] : null;
  // Appended after the user's last line (so no line moves): publish ESM named exports and hand
  // back the top-level binding named by the handler, which finds undeclared-export handlers
  // such as a bare `async function handler(event) {}`.
  let tail = '\n;';
  for (const [exported, local] of rewritten.exportPairs) {
    tail += `exports[${JSON.stringify(exported)}] = ${local};`;
  }
  if (captureName) {
    tail += `return typeof ${captureName} === 'undefined' ? undefined : ${captureName};`;
  }
  const fullSrc = rewritten.src + tail;

  let fn;
  let isAsync = false;
  try {
    fn = compileUser(fullSrc, filename, false);
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
    if (/\bawait\b/.test(err.message)) {
      try {
        fn = compileUser(fullSrc, filename, true);
        isAsync = true;
      } catch (err2) {
        err = err2;
      }
    }
    if (!fn) {
      // Report the location as the user's own file would have it, without our tail.
      let report = err;
      try {
        compileUser(rewritten.src, filename, isAsync);
      } catch (err3) {
        if (err3 instanceof SyntaxError) report = err3;
      }
      throw syntaxInitError(report, filename, lineCount);
    }
  }

  const mod = new Module(filename, null);
  mod.filename = filename;
  mod.paths = Module._nodeModulePaths(path.dirname(filename));
  Module._cache[filename] = mod;
  const req = Module.createRequire(filename);
  let captured;
  try {
    captured = fn.call(mod.exports, mod.exports, req, mod, filename, path.dirname(filename));
    if (isAsync) captured = await captured;
  } catch (err) {
    if (err instanceof SyntaxError && typeof err.stack === 'string' &&
        /^(.*):(\d+)\n/.test(err.stack)) {
      // A module it required failed to compile.
      throw syntaxInitError(err, filename);
    }
    const first = messageOf(err).split('\n')[0];
    throw new InitError('Runtime.ImportModuleError', `${errorTypeOf(err)}: ${first}`,
        stackLinesOf(err));
  }
  mod.loaded = true;

  const exportsObj = mod.exports;
  let handler = dig(exportsObj, fnParts, 0);
  if (typeof handler !== 'function' && captured !== undefined) handler = dig(captured, fnParts, 1);
  if (typeof handler !== 'function' && exportsObj !== null && exportsObj !== undefined) {
    const def = exportsObj.default;
    if (typeof def === 'function') {
      handler = def;
    } else if (def !== null && typeof def === 'object' &&
        typeof dig(def, fnParts, 0) === 'function') {
      handler = dig(def, fnParts, 0);
    }
  }
  if (typeof handler !== 'function' && typeof exportsObj === 'function') handler = exportsObj;
  if (typeof handler !== 'function') {
    const found = dig(exportsObj, fnParts, 0) !== undefined || captured !== undefined;
    throw new InitError('Runtime.HandlerNotFound', found ?
        `${handlerSpec} is not a function` : `${handlerSpec} is undefined or not exported`);
  }
  return handler;
}

// ---------------------------------------------------------------------------------------------
// The invocation loop

let client = null;
let exiting = false; // set once a fatal error is being reported; the loop must stop
let inflight = null; // {id, done} of the invocation being run
let handler = null;
let isCallbackHandler = false;

function parseJsonHeader(value) {
  if (value === undefined || value === '') return undefined;
  try {
    return JSON.parse(value);
  } catch (e) {
    return undefined;
  }
}

// Formatting a Date costs more than building the rest of a context, so each second is
// formatted once.
let isoSecondMs = NaN;
let isoSecondPrefix = ''; // "2026-11-21T08:30:15." for isoSecondMs
function isoTimestamp(nowMs) {
  const millis = nowMs % 1000;
  if (nowMs - millis !== isoSecondMs) {
    isoSecondMs = nowMs - millis;
    isoSecondPrefix = new Date(isoSecondMs).toISOString().slice(0, 20);
  }
  return `${isoSecondPrefix}${millis < 10 ? '00' : millis < 100 ? '0' : ''}${millis}Z`;
}

function makeContext(id, res) {
  const now = Date.now();
  let deadline = Number(res.deadlineMs);
  if (!Number.isFinite(deadline) || deadline <= 0) deadline = now + kFallbackTimeoutMs;
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: kNameInProject,
    projectId: kProjectId,
    functionVersion: kFunctionVersion,
    invokedFunctionArn: res.invokedFunctionArn,
    memoryLimitInMB: kMemorySize,
    awsRequestId: id,
    invocationId: id,
    timestamp: isoTimestamp(now),
    logGroupName: kLogGroupName,
    logStreamName: kLogStreamName,
    clientContext: parseJsonHeader(res.clientContext),
    identity: parseJsonHeader(res.cognitoIdentity),
    getRemainingTimeInMillis() {
      const left = deadline - Date.now();
      return left > 0 ? left : 0;
    },
  };
}

function stdioPending() {
  return process.stdout.writableLength > 0 || process.stderr.writableLength > 0;
}

// Every byte the function wrote must be in the pipe before wispd sees the response.
async function flushStdio() {
  while (stdioPending()) {
    const s = process.stdout.writableLength > 0 ? process.stdout : process.stderr;
    await new Promise((resolve) => {
      s.once('drain', resolve);
      // Guard against a drain that already happened between the check and the listener.
      setImmediate(() => { if (s.writableLength === 0) resolve(); });
    });
  }
}

function checkPostStatus(res, what) {
  if (res.status === 202 || (res.status >= 200 && res.status < 300)) return;
  const detail = res.body.slice(0, 500);
  process.stderr.write(`wisp runtime: ${what} rejected with HTTP ${res.status}: ${detail}\n`);
  if (res.status >= 500) process.exit(1);
}

async function postError(id, errorType, errorMessage, stackTrace, c = client) {
  await flushStdio();
  const res = await c.post(`/invocation/${id}/error`,
      errorPayload(errorType, errorMessage, stackTrace), headerSafe(errorType));
  checkPostStatus(res, 'error');
}

async function reportInvokeError(id, err, c) {
  logErrorToStderr(err);
  await postError(id, errorTypeOf(err), messageOf(err), stackLinesOf(err), c);
}

function runCallbackHandler(event, ctx) {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (ok, value) => {
      if (settled) return;
      settled = true;
      if (ok) resolve(value);
      else reject(value);
    };
    const callback = (err, data) => {
      if (err !== undefined && err !== null) settle(false, err);
      else settle(true, data);
    };
    ctx.done = callback;
    ctx.succeed = (data) => settle(true, data);
    ctx.fail = (err) => {
      settle(false, err === undefined || err === null ? new Error('handled') : err);
    };
    const r = handler(event, ctx, callback);
    if (r !== null && typeof r === 'object' && typeof r.then === 'function') {
      r.then((v) => settle(true, v), (e) => settle(false, e));
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Response streaming, as Lambda's Node runtime offers it: awslambda.streamifyResponse(handler)
// marks a handler that takes (event, responseStream, context); HttpResponseStream.from writes
// the function URL's status and headers ahead of the body (JSON, then 8 NUL bytes).

const kStreamingHandler = Symbol.for('aws.lambda.runtime.handler.streaming');
const kHttpIntegrationType = 'application/vnd.awslambda.http-integration-response';

globalThis.awslambda = {
  streamifyResponse(fn) {
    fn[kStreamingHandler] = 'response';
    return fn;
  },
  HttpResponseStream: {
    from(stream, prelude) {
      stream.setContentType(kHttpIntegrationType);
      stream.write(JSON.stringify(prelude || {}));
      stream.write(Buffer.alloc(8));
      return stream;
    },
  },
};

// The Writable a streaming handler writes to; its bytes go to wispd as they are written, with
// the socket's backpressure. A pipelined client's connection carries the other calls' requests
// in between, so with several calls at once a stream goes over a connection of its own.
function makeResponseStream(pathSuffix, c) {
  const { Writable } = require('stream');
  let contentType = 'application/octet-stream';
  let upload = null;
  const own = c.pipelined_ ? new RuntimeClient(c.host_, c.port_, null) : null;
  const start = () => upload || (upload = (own || c).startStream(pathSuffix, contentType));
  const stream = new Writable({
    write(chunk, encoding, callback) {
      const u = start();
      if (u.write(chunk)) callback();
      else u.sock.once('drain', () => callback());
    },
    final(callback) {
      start();
      callback();
    },
  });
  stream.setContentType = (type) => { contentType = String(type); };
  const close = () => { if (own !== null && own.sock_ !== null) own.sock_.destroy(); };
  return { stream, start, started: () => upload !== null, close };
}

async function invokeStreaming(id, event, ctx, current, c) {
  const { stream, start, started, close } = makeResponseStream(`/invocation/${id}/response`, c);
  const finished = new Promise((resolve) => stream.on('finish', resolve));
  try {
    await handler(event, stream, ctx);
  } catch (err) {
    if (current.done || exiting) return undefined;
    if (!started()) {
      current.done = true;
      close();
      await reportInvokeError(id, err, c);
      return undefined;
    }
    // The head is out: the error can only end the body early.
    process.stderr.write(`${errorTypeOf(err)}: ${messageOf(err)}\n`);
  }
  if (!stream.writableEnded) stream.end();
  await finished;
  if (current.done || exiting) return undefined;
  current.done = true;
  if (stdioPending()) await flushStdio();
  const res = await start().end();
  close();
  checkPostStatus(res, 'streamed response');
  inflight = null;
  return c.next();
}

async function invoke(res, c = client) {
  const id = res.requestId;
  if (!id) {
    process.stderr.write('wisp runtime: /next response without Lambda-Runtime-Aws-Request-Id\n');
    process.exit(1);
  }
  const current = { id, done: false };
  inflight = current;
  // Writing process.env calls setenv(3), which also keeps every value it was given until the
  // process exits: write only what changes. Calls that run side by side would share it: each
  // has its trace id in the Lambda-Runtime-Trace-Id header only (and in its record).
  const trace = res.traceId;
  if (maxConcurrency === 1 && env._X_AMZN_TRACE_ID !== trace) {
    if (trace !== undefined) env._X_AMZN_TRACE_ID = trace;
    else delete env._X_AMZN_TRACE_ID;
  }

  let event;
  try {
    event = res.body.length === 0 ? {} : JSON.parse(res.body);
  } catch (err) {
    current.done = true;
    await postError(id, 'Runtime.UnmarshalError',
        `Unable to parse event as JSON: ${err.message}`, [], c);
    return;
  }
  const ctx = makeContext(id, res);
  if (handler[kStreamingHandler] === 'response') return invokeStreaming(id, event, ctx, current, c);

  let result;
  try {
    if (isCallbackHandler) {
      result = await runCallbackHandler(event, ctx);
    } else {
      result = handler(event, ctx);
      if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
        result = await result;
      }
    }
  } catch (err) {
    if (current.done || exiting) return;
    current.done = true;
    await reportInvokeError(id, err, c);
    return;
  }
  if (current.done || exiting) return; // an uncaught error already answered this invocation
  current.done = true;

  let body;
  try {
    body = result === undefined ? 'null' : JSON.stringify(result);
    if (body === undefined) body = 'null'; // functions, symbols
  } catch (err) {
    const message = `Unable to stringify response body as JSON: ${err.message}`;
    process.stderr.write(`Runtime.MarshalError: ${message}\n`);
    await postError(id, 'Runtime.MarshalError', message, stackLinesOf(err), c);
    return;
  }
  if (stdioPending()) await flushStdio();
  inflight = null;
  return c.postThenNext(`/invocation/${id}/response`, body, 'response');
}

// ---------------------------------------------------------------------------------------------
// Several calls at once

let maxConcurrency = 1;
const callContext = new AsyncLocalStorage(); // {tag, atLineStart} of the call running

// Tags every line a call writes with its request id; text written outside any call (start-up,
// a timer set up at load time) stays as it is, and wispd keeps it in the instance's log.
function tagStdio() {
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write;
    stream.write = function (chunk, encoding, callback) {
      const call = callContext.getStore();
      if (call === undefined) return write.call(this, chunk, encoding, callback);
      let text;
      if (typeof chunk === 'string') {
        text = chunk;
      } else {
        text = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('utf8');
        if (typeof encoding === 'string') encoding = undefined; // not a string's encoding
      }
      let out = '';
      for (let start = 0; start < text.length;) {
        const newline = text.indexOf('\n', start);
        const end = newline < 0 ? text.length : newline + 1;
        if (call.atLineStart) out += call.tag;
        out += text.slice(start, end);
        call.atLineStart = newline >= 0;
        start = end;
      }
      return write.call(this, out, encoding, callback);
    };
  }
}

function invokeTagged(res, c) {
  const call = { tag: `\x1f${res.requestId}\x1f`, atLineStart: true };
  return callContext.run(call, () => invoke(res, c));
}

// One of the loops that serve calls side by side: asks for an event, runs it, and so on.
async function serveConcurrently(c) {
  let following = null;
  for (;;) {
    if (exiting) await new Promise(() => {});
    const res = following !== null ? following : await c.next();
    if (res.status !== 200) {
      const detail = res.body.slice(0, 500);
      process.stderr.write(`wisp runtime: /next failed with HTTP ${res.status}: ${detail}\n`);
      process.exit(1);
    }
    if (exiting) await new Promise(() => {});
    following = (await invokeTagged(res, c)) || null;
  }
}

async function onFatal(err, kind) {
  // An error escaped the handler's promise chain (a throwing timer, an unhandled rejection).
  // Answer the invocation in flight with it, then exit: the instance's state is unknown.
  if (exiting) return;
  exiting = true;
  try {
    logErrorToStderr(err);
    const current = inflight;
    if (maxConcurrency === 1 && current !== null && !current.done && client !== null) {
      current.done = true;
      let errorType = errorTypeOf(err);
      if (kind === 'unhandledRejection' && !(err instanceof Error)) {
        errorType = 'Runtime.UnhandledPromiseRejection';
      }
      await postError(current.id, errorType, messageOf(err), stackLinesOf(err));
    }
  } finally {
    process.exit(1);
  }
}

function makeStdioBlocking() {
  // Node writes to pipes with libuv, which queues the rest of a write when the pipe is full.
  // Blocking mode makes every write complete before console.log returns, so nothing the
  // function printed can trail its response.
  for (const s of [process.stdout, process.stderr]) {
    const h = s._handle;
    if (h && typeof h.setBlocking === 'function') h.setBlocking(true);
  }
}

// A prewarmed instance starts before any function is chosen for it. Its first GET /next
// answers with the Lambda-Runtime-Wisp-Specialize header and the function's environment (its
// code is already visible under /var/task by then); from here on it is that function's instance.
async function awaitSpecialisation() {
  const res = await client.next();
  if (res.status !== 200 || res.wispSpecialize === undefined) {
    process.stderr.write(`wisp runtime: expected a specialisation, got HTTP ${res.status}\n`);
    process.exit(1);
  }
  const spec = JSON.parse(res.body);
  for (const [key, value] of Object.entries(spec.env || {})) env[key] = String(value);
  delete env.WISP_PREWARMED;
  readFunctionIdentity();
}

// The fd of wispd's Runtime API channel (WISP_RUNTIME_API_FD), or null. The variable is removed
// so that nothing the function starts mistakes the number for its own.
function takeChannelFd() {
  const value = env.WISP_RUNTIME_API_FD;
  delete env.WISP_RUNTIME_API_FD;
  if (value === undefined || !/^[0-9]+$/.test(value)) return null;
  const fd = Number(value);
  try {
    // net.Socket adopts only sockets and pipes; anything else means TCP.
    return fs.fstatSync(fd).isSocket() ? fd : null;
  } catch {
    return null;
  }
}

async function main() {
  const hp = parseHostPort(env.AWS_LAMBDA_RUNTIME_API);
  if (hp === null) {
    process.stderr.write('wisp runtime: AWS_LAMBDA_RUNTIME_API is missing or malformed\n');
    process.exit(1);
  }
  client = new RuntimeClient(hp.host, hp.port, takeChannelFd());
  makeStdioBlocking();
  process.on('uncaughtException', (err) => { onFatal(err, 'uncaughtException'); });
  process.on('unhandledRejection', (reason) => { onFatal(reason, 'unhandledRejection'); });

  if (env.WISP_PREWARMED === '1') await awaitSpecialisation();

  try {
    handler = await loadHandler();
  } catch (err) {
    let errorType;
    let message;
    let stack;
    if (err instanceof InitError) {
      errorType = err.errorType;
      message = err.message;
      stack = err.stackTrace;
    } else {
      errorType = 'Runtime.ImportModuleError';
      message = `${errorTypeOf(err)}: ${messageOf(err)}`;
      stack = stackLinesOf(err);
    }
    process.stderr.write(`${errorType}: ${message}\n`);
    try {
      await flushStdio();
      const res = await client.post('/init/error', errorPayload(errorType, message, stack),
          headerSafe(errorType));
      checkPostStatus(res, 'init error');
    } finally {
      process.exit(1);
    }
  }
  isCallbackHandler = handler.length >= 3;
  const wanted = Number(env.AWS_LAMBDA_MAX_CONCURRENCY);
  if (Number.isInteger(wanted) && wanted > 1) {
    maxConcurrency = wanted;
    tagStdio();
    // An error that escapes one call's promise chain cannot be told from another's: the
    // process exits, and wispd fails every call in flight on it (onFatal).
    client.pipeline();
    const loops = [];
    for (let i = 0; i < maxConcurrency; ++i) loops.push(serveConcurrently(client));
    await Promise.all(loops);
    return;
  }

  // The next event: asked for on its own after an error, or together with a result.
  let following = null;
  for (;;) {
    inflight = null;
    // After a fatal error the process is about to exit; send nothing more.
    if (exiting) await new Promise(() => {});
    const res = following !== null ? following : await client.next();
    if (res.status !== 200) {
      const detail = res.body.slice(0, 500);
      process.stderr.write(`wisp runtime: /next failed with HTTP ${res.status}: ${detail}\n`);
      process.exit(1);
    }
    if (exiting) await new Promise(() => {});
    following = (await invoke(res)) || null;
  }
}

main().catch((err) => {
  process.stderr.write(`wisp runtime: fatal: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
