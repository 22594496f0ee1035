"""Bodies of /api/admin/reports/*."""

from marshmallow import Schema, ValidationError, fields, validates_schema

from marketplace.openapi import Timestamp


class RevenueArgsSchema(Schema):
    from_ = Timestamp(data_key="from", metadata={"description": "entries occurred at or after, ISO 8601"})
    to = Timestamp(metadata={"description": "entries occurred before"})

    @validates_schema
    def _ordered(self, data, **kwargs):
        if "from_" in data and "to" in data and data["from_"] >= data["to"]:
            raise ValidationError("Must be later than from.", "to")


class RevenueRowSchema(Schema):
    currency = fields.String(required=True)
    gross_volume = fields.Integer(required=True)
    platform_fees = fields.Integer(required=True)
    stripe_fees = fields.Integer(required=True)
    refunds = fields.Integer(required=True)
    disputes = fields.Integer(required=True)
    net_revenue = fields.Integer(required=True)


class RevenueReportSchema(Schema):
    data = fields.List(fields.Nested(RevenueRowSchema), required=True,
                       metadata={"description": "one row per currency"})
