"""/healthz, /readyz and /metrics."""
from flask import Response
from marshmallow import Schema, fields
from prometheus_client import CONTENT_TYPE_LATEST

from marketplace import observability
from marketplace.errors import ServiceUnavailable
from marketplace.health import service
from marketplace.openapi import Blueprint

blp = Blueprint("operations", __name__, description="Liveness, readiness and metrics")


class HealthSchema(Schema):
    status = fields.String(required=True)


class ReadySchema(Schema):
    status = fields.String(required=True)
    checks = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


@blp.route("/healthz")
@blp.response(200, HealthSchema)
def healthz():
    """The process is alive."""
    return {"status": "ok"}


@blp.route("/readyz")
@blp.response(200, ReadySchema)
@blp.errors(503)
def readyz():
    """The database and Redis (when configured) are reachable; 503 names the one that is not."""
    checks = service.readiness()
    failed = sorted(name for name, state in checks.items() if state == "unreachable")
    if failed:
        raise ServiceUnavailable(
            f"Not ready: {', '.join(failed)} unreachable.", code="not_ready", details=checks
        )
    return {"status": "ready", "checks": checks}


@blp.route("/metrics")
@blp.response(200, content_type="text/plain", description="Prometheus text exposition")
@blp.errors(401)
def metrics():
    """Prometheus metrics: requests, latency and jobs; business figures from the database.

    With PROMETHEUS_MULTIPROC_DIR set, the request and job metrics are summed over every
    process. Payments, refunds, payouts, webhook events, the outbox and money movements are
    read at each scrape. With METRICS_TOKEN set, `Authorization: Bearer <METRICS_TOKEN>` is
    required (401 otherwise).
    """
    observability.require_metrics_token()
    return Response(observability.exposition(), mimetype=CONTENT_TYPE_LATEST)
