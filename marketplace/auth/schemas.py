"""Request and response bodies of /api/auth."""
from marshmallow import Schema, fields, validate



class RegisterSchema(Schema):
    email = fields.Email(required=True, validate=validate.Length(max=254))
    password = fields.String(
        required=True, load_only=True, validate=validate.Length(min=12, max=1024)
    )
    role = fields.String(required=True, validate=validate.OneOf(["shopper", "vendor"]))


class UserSchema(Schema):
    id = fields.String(required=True)
    email = fields.String(required=True)
    role = fields.String(required=True)


class TokenRequestSchema(Schema):
    email = fields.String(required=True, validate=validate.Length(min=1, max=254))
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=1024))


class TokenSchema(Schema):
    token = fields.String(required=True)
    expires_at = fields.String(required=True, metadata={"format": "date-time"})
