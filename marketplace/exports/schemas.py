"""Queries and answers of /api/admin/exports/*."""
from marshmallow import Schema, ValidationError, validates_schema

from marketplace.openapi import Timestamp

_BOUND = "ISO 8601 date-time (no offset: UTC) or date (midnight UTC); required"


class ExportWindowArgsSchema(Schema):
    """[from, to): both required, from before to; anything else is a 422."""

    from_ = Timestamp(data_key="from", required=True, metadata={"description": f"window start, inclusive: {_BOUND}"})
    to = Timestamp(required=True, metadata={"description": f"window end, exclusive: {_BOUND}"})

    @validates_schema
    def _ordered(self, data, **kwargs):
        if "from_" in data and "to" in data and data["from_"] >= data["to"]:
            raise ValidationError("Must be later than from.", "to")


def csv_response(description: str) -> dict:
    """The OpenAPI answer of a CSV attachment."""
    return {"description": description, "content": {"text/csv": {"schema": {"type": "string"}}},
            "headers": {"Content-Disposition": {
                "description": "attachment; filename=<export>_<from>_<to>.csv", "schema": {"type": "string"}}}}
