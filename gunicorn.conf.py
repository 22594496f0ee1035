"""gunicorn's settings, read from the working directory wherever the app is served from it
(`make run`, the Dockerfile, docker-compose, the benchmarks).

gunicorn answers some requests itself before the app sees them: a request line longer than
`limit_request_line` (414), too many or too large headers (431), a malformed request (400).
Its page for those is HTML; here it is the API's error envelope like every other answer,
`{"error": {"code", "message", "details"}}`, and says nothing of what the client sent.

With PROMETHEUS_MULTIPROC_DIR set, each worker writes its metrics into that directory and
/metrics sums every process's files (prometheus-client's multiprocess mode): the master
clears the files of earlier web processes when it starts, and marks each worker that exits
dead, so the gauges summed over live workers forget it (its counters still count).
"""
import json
import os
import re

from gunicorn import util

# gunicorn's defaults, stated: the app's own limits (MAX_BODY_BYTES) are far larger than
# what any header or URL of this API needs.
# Threaded workers: a worker serving a long response (a streamed export, a slow client) keeps
# telling the master it is alive, where a sync worker would be killed after `timeout`
# seconds mid-file; and a worker waiting on Stripe or the database serves others meanwhile.
# `--workers` and `--threads` on the command line say how many.
worker_class = "gthread"
threads = 4

limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190


def _write_error(sock, status_int, reason, mesg):
    body = json.dumps({"error": {
        "code": re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_"),
        "message": f"{reason}: the request was refused before it reached the application.",
        "details": {},
    }})
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, (head + body).encode("latin1"))


util.write_error = _write_error


def on_starting(server):
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        from marketplace.observability import clear_multiprocess_dir

        clear_multiprocess_dir(path)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
