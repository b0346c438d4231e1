"""The no-platform baseline for Python: the benchmark's handler behind a minimal HTTP/1.1
server on raw non-blocking sockets (selectors, one thread), the fastest plain-Python way to
serve it; http.server would add ~100 us of its own per call. Parses the JSON body, takes its
"event" member as wispd does, calls the handler, answers with the result. Listens on
127.0.0.1:<argv[1] or 0> and prints "PORT <n>" when ready. Handles Content-Length bodies only.
"""
import json
import selectors
import signal
import socket
import sys


def handler(event):
    return {"ok": True, "n": event.get("n")}


def respond(body):
    try:
        doc = json.loads(body) if body else {}
        event = doc["event"] if isinstance(doc, dict) and "event" in doc else doc
        status, out = b"200 OK", json.dumps(handler(event), separators=(",", ":")).encode()
    except Exception as e:  # the baseline reports handler failures as wispd would: a 500
        status = b"500 Internal Server Error"
        out = json.dumps({"errorType": type(e).__name__, "errorMessage": str(e)}).encode()
    return (b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(out)).encode() + b"\r\n\r\n" + out)


def main():
    sel = selectors.DefaultSelector()
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0))
    lsock.listen(1024)
    lsock.setblocking(False)
    sel.register(lsock, selectors.EVENT_READ, None)
    buffers = {}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.stdout.write("PORT %d\n" % lsock.getsockname()[1])
    sys.stdout.flush()
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            if key.data is None:
                conn, _ = lsock.accept()
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sel.register(conn, selectors.EVENT_READ, True)
                buffers[conn] = b""
                continue
            try:
                chunk = sock.recv(65536)
            except ConnectionError:
                chunk = b""
            if not chunk:
                sel.unregister(sock)
                sock.close()
                del buffers[sock]
                continue
            buf = buffers[sock] + chunk
            out = []
            while True:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    break
                length = 0
                for line in buf[:end].split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if len(buf) < end + 4 + length:
                    break
                out.append(respond(buf[end + 4:end + 4 + length]))
                buf = buf[end + 4 + length:]
            buffers[sock] = buf
            if out:
                sock.sendall(b"".join(out))  # small responses: the socket buffer takes them


if __name__ == "__main__":
    main()
