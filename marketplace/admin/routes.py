"""GET /api/admin/audit-log."""
from marshmallow import Schema, fields

from marketplace import audit
from marketplace.database import isoformat
from marketplace.openapi import Blueprint
from marketplace.pagination import PageArgsSchema, list_schema

blp = Blueprint("admin_audit", __name__, url_prefix="/api/admin", description="Audit log")


class AuditEntrySchema(Schema):
    at = fields.Function(lambda e: isoformat(e.at), required=True, metadata={"type": "string", "format": "date-time"})
    actor = fields.String(required=True)
    action = fields.String(required=True)
    object_type = fields.String(required=True)
    object_id = fields.String(required=True)
    amount = fields.Integer(allow_none=True)
    currency = fields.String(allow_none=True)
    request_id = fields.String(allow_none=True)


class AuditArgsSchema(PageArgsSchema):
    action = fields.String()
    object_type = fields.String()
    object_id = fields.String()
    actor = fields.String()


@blp.route("/audit-log")
@blp.auth("admin")
@blp.arguments(AuditArgsSchema, location="query")
@blp.response(200, list_schema(AuditEntrySchema, "AuditEntryList"))
def audit_log(args):
    """Every money-moving or privileged action, newest first."""
    return audit.list_entries(**args)
