"""A lean threaded HTTP/1.1 keep-alive server for a WSGI app (faster than a dev server)."""
import io
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    """Builds a small WSGI environ and writes each response with one send."""

    protocol_version = "HTTP/1.1"
    app = None

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):
        pass

    def _handle(self):
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        host, port = self.server.server_address[:2]
        environ = {
            "REQUEST_METHOD": self.command, "PATH_INFO": path, "QUERY_STRING": query,
            "SCRIPT_NAME": "", "SERVER_NAME": host, "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": self.request_version, "REMOTE_ADDR": self.client_address[0],
            "CONTENT_LENGTH": str(length), "CONTENT_TYPE": self.headers.get(
                "Content-Type", ""),
            "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
            "wsgi.url_scheme": "http", "wsgi.version": (1, 0), "wsgi.multithread": True,
            "wsgi.multiprocess": False, "wsgi.run_once": False,
        }
        for key, value in self.headers.items():
            name = "HTTP_" + key.upper().replace("-", "_")
            if name not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                environ[name] = value
        state = {}

        def start_response(status, headers, exc_info=None):
            state["status"], state["headers"] = status, headers
        chunks = self.app(environ, start_response)
        try:
            payload = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        lines = ["HTTP/1.1 " + state["status"]]
        lines += ["%s: %s" % (k, v) for k, v in state["headers"]
                  if k.lower() not in ("content-length", "connection")]
        lines.append("Content-Length: %d" % len(payload))
        if self.close_connection:
            lines.append("Connection: close")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _handle


class Server(ThreadingHTTPServer):
    """One thread per connection; daemon threads so shutdown never hangs."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def make_server(host, port, app):
    """A Server bound to (host, port) serving `app`."""
    handler = type("BoundHandler", (Handler,), {"app": app})
    return Server((host, port), handler)
