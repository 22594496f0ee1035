"""Request and response bodies of the wallet endpoints."""
from marshmallow import Schema, fields, validate


class SetupIntentSchema(Schema):
    setup_intent_id = fields.String(required=True)
    client_secret = fields.String(required=True)
    status = fields.String(required=True)


# A PaymentMethod id (`pm_...`, the test ones included): it becomes part of Stripe's path.
PAYMENT_METHOD_ID = validate.Regexp(r"^pm_[A-Za-z0-9_]{1,252}$", error="Not a PaymentMethod id (pm_...).")


class SavePaymentMethodSchema(Schema):
    payment_method = fields.String(required=True, validate=PAYMENT_METHOD_ID)


class PaymentMethodSchema(Schema):
    id = fields.String(required=True)
    brand = fields.String(required=True, allow_none=True)
    last4 = fields.String(required=True, allow_none=True)
    exp_month = fields.Integer(required=True, allow_none=True)
    exp_year = fields.Integer(required=True, allow_none=True)
    is_default = fields.Boolean(required=True)


class PaymentMethodListSchema(Schema):
    data = fields.List(fields.Nested(PaymentMethodSchema), required=True)
