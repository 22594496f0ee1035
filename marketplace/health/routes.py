"""/healthz, /readyz and /metrics."""
from flask import Response, current_app
from marshmallow import Schema, fields
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

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
def metrics():
    """Request counts and latency by endpoint and status; money movements by status."""
    metrics = current_app.extensions["metrics"]
    service.count_movements(metrics.movements)
    registry = metrics.registry
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
