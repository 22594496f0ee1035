"""The app as it is served (gunicorn with the repository's gunicorn.conf.py): what gunicorn
answers itself is the error envelope, and oversized bodies are refused without being read
or kept in memory."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_gunicorn(env: dict, *options: str, log=subprocess.DEVNULL) -> tuple[int, subprocess.Popen]:
    """gunicorn serving wsgi:app from the repository (with its gunicorn.conf.py) on a free
    port, returned once it accepts connections: (port, master process)."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", *options, "wsgi:app"],
        cwd=ROOT, env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return port, process
        except OSError:
            time.sleep(0.1)
    process.kill()
    pytest.fail("gunicorn did not start")


def stop_gunicorn(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    env = {**os.environ, "APP_ENV": "development", "REDIS_URL": "",
           "DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('gunicorn')}/app.db"}
    port, process = start_gunicorn(env, "--workers", "1", "--threads", "2")
    yield port, process
    stop_gunicorn(process)


def _exchange(port: int, head: bytes, body: bytes = b"") -> tuple[int, dict, bytes]:
    """Send raw bytes; read the whole answer (the server closes after it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(head + body)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    header_block, _, payload = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = header_block.decode("latin1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, payload


@pytest.mark.parametrize("head, status, code", [
    (b"GET /api/products?q=" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
    (b"GET /api/products HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431,
     "request_header_fields_too_large"),
    (b"GET /api/products HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(150)) + b"\r\n", 431,
     "request_header_fields_too_large"),
    (b"NOT A REQUEST\r\n\r\n", 400, "bad_request"),
])
def test_what_gunicorn_refuses_itself_is_answered_in_the_envelope(served, head, status, code):
    port, _ = served
    answered, headers, payload = _exchange(port, head)
    assert answered == status
    assert headers["content-type"] == "application/json"
    assert json.loads(payload) == {"error": {"code": code, "message": json.loads(payload)["error"]["message"],
                                             "details": {}}}
    assert b"aaaa" not in payload and b"bbbb" not in payload  # nothing of the request is echoed


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads memory from /proc")
def test_oversized_bodies_are_refused_unread_and_memory_stays_flat(served):
    port, process = served
    worker = _worker_pid(process.pid)
    hundred_mb = 100 * 1024 * 1024
    head = (b"POST /api/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % hundred_mb)
    _exchange(port, head, b"{" * 65536)  # warm up: imports, first request
    before = _rss_kb(worker)
    for _ in range(20):
        # Only the first MB is sent: an app that read the body would wait for the other 99.
        status, headers, payload = _exchange(port, head, b"{" * (1024 * 1024))
        assert status == 413, payload[:200]
        assert json.loads(payload)["error"]["code"] == "request_entity_too_large"
    after = _rss_kb(worker)
    assert after - before < 10 * 1024, f"worker RSS grew from {before} kB to {after} kB"
