"""Request and response bodies of /api/products."""
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from marketplace import money
from marketplace.openapi import Currency, StrictBoolean
from marketplace.pagination import PageArgsSchema

MAX_STOCK = 1_000_000_000


class RecurringSchema(Schema):
    interval = fields.String(required=True, validate=validate.OneOf(("month", "year")))
    interval_count = fields.Integer(load_default=1, strict=True, validate=validate.Range(min=1, max=12))


class ProductCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(load_default="", validate=validate.Length(max=5000))
    price = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=money.MAXIMUM_CHARGE),
        metadata={"description": "minor units of `currency`"},
    )
    currency = Currency(required=True)
    stock = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=MAX_STOCK))
    active = StrictBoolean(load_default=True)
    recurring = fields.Nested(RecurringSchema, allow_none=True, load_default=None,
                              metadata={"description": "sold by subscription: billed every interval_count months "
                                                       "or years at `price`; null: a one-off product"})

    @validates_schema
    def _price_in_currency(self, data, **kwargs) -> None:
        check_price(data.get("price"), data.get("currency"))


def check_price(price: int | None, currency: str | None) -> None:
    """Three-decimal currencies take prices ending in 0 (Stripe's rule)."""
    if price is not None and currency and not money.is_valid_amount(price, currency):
        raise ValidationError(price_message(currency), "price")


def price_message(currency: str) -> str:
    """Why a price is refused in a three-decimal currency."""
    return f"{currency.lower()} amounts must end in 0 (three-decimal currency)."


class ProductUpdateSchema(ProductCreateSchema):
    """Loaded with partial=True; the service checks the price rule against the stored currency."""


class ProductSchema(Schema):
    id = fields.String(required=True)
    vendor_id = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String(required=True)
    price = fields.Integer(required=True)
    currency = fields.String(required=True)
    stock = fields.Integer(required=True)
    active = fields.Boolean(required=True)
    recurring = fields.Nested(RecurringSchema, allow_none=True)


class ProductListArgsSchema(PageArgsSchema):
    vendor_id = fields.String()
