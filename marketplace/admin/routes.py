"""GET /api/admin/audit-log and GET /api/admin/search."""
from marshmallow import Schema, ValidationError, fields, validate

from marketplace import audit
from marketplace.admin import search
from marketplace.database import isoformat
from marketplace.openapi import Blueprint
from marketplace.pagination import PageArgsSchema, list_schema

blp = Blueprint("admin_audit", __name__, url_prefix="/api/admin", description="Audit log and search")


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


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Must not be blank.")


class SearchArgsSchema(Schema):
    q = fields.String(
        required=True, validate=[validate.Length(max=search.MAX_QUERY_LENGTH), _not_blank],
        metadata={"description": "a local or Stripe id, an email, or an amount (minor units, or a decimal)"},
    )


class SearchHitSchema(Schema):
    type = fields.String(required=True, metadata={"enum": list(search.TYPES)})
    id = fields.String(required=True)
    path = fields.String(required=True, metadata={"description": "the API path that shows the object"})
    summary = fields.String(required=True)


class SearchResultsSchema(Schema):
    data = fields.List(fields.Nested(SearchHitSchema), required=True)


@blp.route("/search")
@blp.auth("admin")
@blp.arguments(SearchArgsSchema, location="query")
@blp.response(200, SearchResultsSchema)
def admin_search(args):
    """Orders, payments, refunds, payouts, vendors and users by id, Stripe id, email or amount, newest first."""
    return {"data": search.search(args["q"])}
