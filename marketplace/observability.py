"""Request ids, Prometheus metrics and log records that carry the request id."""
from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid

from flask import Flask, g, has_request_context, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
    """Per-app registry, so several apps (tests) never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
        self.movements = Gauge(
            "marketplace_movements",
            "Money movements by status (read from the database at each scrape).",
            ["status"],
            registry=self.registry,
        )


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
    app.extensions["metrics"] = metrics

    @app.after_request
    def observe(response):
        rule = request.url_rule
        endpoint = rule.rule if rule is not None else "<unmatched>"
        metrics.requests.labels(endpoint, request.method, str(response.status_code)).inc()
        started = g.get("request_started")
        if started is not None:
            metrics.latency.labels(endpoint, request.method).observe(time.perf_counter() - started)
        return response


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
