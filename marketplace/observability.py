"""Request ids, Prometheus metrics and log records that carry the request id."""
from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, g, has_request_context, request
from prometheus_client import CollectorRegistry, Counter, Histogram

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


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
    """Attach the request-id filter to the app logger's handlers."""
    logging.getLogger().addFilter(RequestIdFilter())
    app.logger.addFilter(RequestIdFilter())
    logging.getLogger("marketplace").setLevel(app.config.get("LOG_LEVEL", "INFO"))
