"""Request and response bodies of /api/vendors and /api/admin/vendors."""
from marshmallow import Schema, fields, validate

from marketplace.orders.models import STATUSES as ORDER_STATUSES
from marketplace.pagination import PageArgsSchema
from marketplace.vendors.models import STATUSES


class FeePolicySchema(Schema):
    percent_bps = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=0, max=10_000)
    )
    fixed = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=99_999_999))


class VendorCreateSchema(Schema):
    display_name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    country = fields.String(
        required=True,
        validate=validate.Regexp(r"^[A-Za-z]{2}$", error="Must be an ISO 3166-1 alpha-2 code."),
    )
    email = fields.Email(validate=validate.Length(max=254))


class VendorSchema(Schema):
    id = fields.String(required=True)
    display_name = fields.String(required=True)
    country = fields.String(required=True)
    stripe_account_id = fields.String(allow_none=True)
    status = fields.String(required=True, metadata={"enum": list(STATUSES)})
    charges_enabled = fields.Boolean(required=True)
    payouts_enabled = fields.Boolean(required=True)
    requirements_due = fields.List(fields.String(), required=True)
    fee_policy = fields.Nested(
        FeePolicySchema, required=True,
        metadata={"description": "the effective policy: the vendor's override or the platform default"},
    )
    fee_policy_overridden = fields.Boolean(required=True)

    def get_attribute(self, obj, attr, default):
        from marketplace.vendors.service import fee_policy

        if attr == "fee_policy":
            return fee_policy(obj)._asdict()
        if attr == "fee_policy_overridden":
            return obj.fee_percent_bps is not None
        return super().get_attribute(obj, attr, default)


class OnboardingLinkSchema(Schema):
    url = fields.String(required=True)
    expires_at = fields.String(required=True, metadata={"format": "date-time"})


class DashboardLinkSchema(Schema):
    url = fields.String(required=True, metadata={"description": "single use, for the vendor's browser"})


class AdminVendorUpdateSchema(Schema):
    fee_policy = fields.Nested(
        FeePolicySchema, allow_none=True,
        metadata={"description": "null removes the override (the platform default applies)"},
    )
    status = fields.String(validate=validate.OneOf(["active", "suspended"]))


class AdminVendorListArgsSchema(PageArgsSchema):
    status = fields.String(validate=validate.OneOf(STATUSES))


class SalesArgsSchema(PageArgsSchema):
    order_status = fields.String(validate=validate.OneOf(ORDER_STATUSES))
