"""Request ids, Prometheus metrics (one process, or every process: multiprocess mode) and log
records that carry the request id."""
from __future__ import annotations

import hmac
import json
import logging
import os
import re
import socket
import sys
import time
import uuid

from flask import Flask, current_app, g, has_request_context, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from config import ConfigError
from marketplace.errors import Unauthorized

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


# Defence in depth: whatever a log call is handed, these never reach a log line.
_SECRETS = [
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/\-]+=*"), "Bearer [redacted]"),
    (re.compile(r"\b(sk|rk)_(test|live)_[A-Za-z0-9]+"), r"\1_\2_[redacted]"),
    (re.compile(r"\bwhsec_[A-Za-z0-9]+"), "whsec_[redacted]"),
    (re.compile(r"\bmkt_[A-Za-z0-9_\-]+"), "mkt_[redacted]"),
    (re.compile(r"\b(pi|seti)_[A-Za-z0-9]+_secret_[A-Za-z0-9]+"), r"\1_[redacted client_secret]"),
    (re.compile(r"(?i)(\"?password\"?\s*[:=]\s*)(\"[^\"]*\"|[^\s,}]+)"), r"\1[redacted]"),
]
_CARD_LIKE = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")


def _luhn(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        n = int(char) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def _mask_card(match: re.Match) -> str:
    digits = re.sub(r"\D", "", match.group())
    return "[redacted card number]" if _luhn(digits) else match.group()


def redact(text: str) -> str:
    """Strip API keys, webhook secrets, tokens, client secrets, passwords and card numbers."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return _CARD_LIKE.sub(_mask_card, text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, exception type."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "request_id": getattr(record, "request_id", None),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record logged while a request is handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = g.get("request_id") if has_request_context() else None
        return True


class Metrics:
    """The process's own metrics: requests, latency, requests in flight, jobs run.

    Without PROMETHEUS_MULTIPROC_DIR they live in a registry of this app (several apps in one
    process, as in the tests, never collide) and /metrics reads that registry. With it,
    prometheus-client (in multiprocess mode since its import) keeps their values in files of
    that directory, one set per process, and /metrics sums the files of every process.
    Each metric has labels, so no value (and no file) exists before a process uses it.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.scrape = self.registry  # what /metrics reads (register_metrics decides)
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by endpoint, method and status.",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by endpoint and method.",
            ["endpoint", "method"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        # livesum: summed over the live processes; a dead worker's file is removed by
        # gunicorn's child_exit hook (mark_process_dead), so its last value does not linger.
        self.in_progress = Gauge(
            "http_requests_in_progress",
            "HTTP requests being served, by endpoint and method.",
            ["endpoint", "method"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.jobs = Counter(
            "marketplace_jobs_total",
            "Jobs run by `flask worker`, by job and outcome (succeeded, failed).",
            ["job", "outcome"],
            registry=self.registry,
        )
        self.job_latency = Histogram(
            "marketplace_job_duration_seconds",
            "Time `flask worker` spent running each job.",
            ["job"],
            registry=self.registry,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )

    def observe_job(self, job: str, succeeded: bool, seconds: float) -> None:
        """Count one job run and its duration."""
        self.jobs.labels(job, "succeeded" if succeeded else "failed").inc()
        self.job_latency.labels(job).observe(seconds)


# Multiprocess mode: a file is `<type>_<process>.db`. gunicorn's workers are named by their
# pid (what child_exit's mark_process_dead(worker.pid) looks for); `flask worker` processes
# by `rq-<host>-<pid>` (name_this_process), so that workers in other containers sharing the
# directory never write one file, and a starting gunicorn clears its own files only.
_GUNICORN_FILE = re.compile(r"^(?:counter|histogram|summary|gauge_[a-z]+)_\d+\.db$")


def clear_multiprocess_dir(path: str) -> list[str]:
    """Remove the files of earlier web processes (gunicorn's on_starting); returns their names.

    A new master's workers start from zero, as a restarted process does; files of
    `flask worker` processes are kept, those processes may still be writing them.
    """
    os.makedirs(path, exist_ok=True)
    removed = []
    for name in os.listdir(path):
        if _GUNICORN_FILE.match(name):
            os.remove(os.path.join(path, name))
            removed.append(name)
    return removed


def name_this_process(role: str) -> None:
    """Multiprocess mode: name this process's files `<role>-<host>-<pid>` instead of `<pid>`.

    Called before the process makes its first metric value (`flask worker`, before its first job).
    """
    from prometheus_client import values

    if not values.ValueClass._multiprocess:
        return
    host = re.sub(r"[^A-Za-z0-9.-]+", "-", socket.gethostname()) or "host"
    values.ValueClass = values.MultiProcessValue(lambda: f"{role}-{host}-{os.getpid()}")


def _scrape_registry(app: Flask, metrics: Metrics) -> CollectorRegistry:
    """What /metrics reads: this app's registry, or every process's files; and, once, the
    database's figures (shared state: read at each scrape, never summed over processes)."""
    from marketplace.business_metrics import BusinessCollector

    path = app.config.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        registry = metrics.registry
    else:
        from prometheus_client import multiprocess, values

        if not values.ValueClass._multiprocess:
            raise ConfigError("PROMETHEUS_MULTIPROC_DIR must be in the environment when the process starts "
                              "(prometheus-client reads it when it is imported)")
        os.makedirs(path, exist_ok=True)
        registry = CollectorRegistry()  # nothing else registered here: the files are the process metrics
        multiprocess.MultiProcessCollector(registry, path=path)
    registry.register(BusinessCollector())
    return registry


def exposition() -> bytes:
    """The Prometheus text of this app's scrape registry."""
    return generate_latest(current_app.extensions["metrics"].scrape)


def require_metrics_token() -> None:
    """With METRICS_TOKEN set, only `Authorization: Bearer <METRICS_TOKEN>` may read /metrics."""
    token = current_app.config.get("METRICS_TOKEN")
    if not token:
        return
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), token.encode()):
        raise Unauthorized("A valid metrics token is required.", headers={"WWW-Authenticate": 'Bearer realm="metrics"'})


def register_request_id(app: Flask) -> None:
    """Accept a sane X-Request-Id or make one; echo it on every response."""

    @app.before_request
    def assign_request_id():
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        g.request_started = time.perf_counter()

    @app.after_request
    def echo_request_id(response):
        if "request_id" in g:
            response.headers["X-Request-Id"] = g.request_id
        return response


def register_metrics(app: Flask) -> None:
    """Count and time every request by its route (not its raw path: bounded labels)."""
    metrics = Metrics()
    metrics.scrape = _scrape_registry(app, metrics)
    app.extensions["metrics"] = metrics

    @app.before_request
    def count_in_progress():
        g.in_progress = metrics.in_progress.labels(_endpoint(), request.method)
        g.in_progress.inc()

    @app.after_request
    def observe(response):
        endpoint = _endpoint()
        metrics.requests.labels(endpoint, request.method, str(response.status_code)).inc()
        started = g.get("request_started")
        if started is not None:
            metrics.latency.labels(endpoint, request.method).observe(time.perf_counter() - started)
        return response

    @app.teardown_request
    def done_in_progress(_error):
        gauge = g.pop("in_progress", None)
        if gauge is not None:
            gauge.dec()


def _endpoint() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else "<unmatched>"


def register_logging(app: Flask) -> None:
    """Structured JSON logs on stderr, with the request id, secrets redacted (installed once)."""
    logger = logging.getLogger("marketplace")
    logger.setLevel(app.config.get("LOG_LEVEL", "INFO"))
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler.addFilter(RequestIdFilter())
        logger.addHandler(handler)
        logger.propagate = app.config.get("TESTING", False)  # pytest's capture reads propagated records
    for name in ("rq.worker", "jobs"):
        child = logging.getLogger(name)
        if not any(isinstance(h.formatter, JsonFormatter) for h in child.handlers):
            child.addHandler(logger.handlers[0])
