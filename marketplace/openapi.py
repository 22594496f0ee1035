"""flask-smorest glue: the error envelope in the spec, a Blueprint that documents auth and errors,
the timestamp field of queries and bodies."""
from __future__ import annotations

from datetime import timezone
from http import HTTPStatus

import flask_smorest
from flask import current_app
from marshmallow import Schema, fields

from marketplace.input_guard import Parser


class ErrorDetailSchema(Schema):
    code = fields.String(required=True, metadata={"example": "validation_error"})
    message = fields.String(required=True)
    details = fields.Dict(required=True)


class ErrorEnvelopeSchema(Schema):
    """`{"error": {"code", "message", "details"}}` for every status >= 400."""

    error = fields.Nested(ErrorDetailSchema, required=True)


class Timestamp(fields.AwareDateTime):
    """An ISO 8601 timestamp in a query or body (no offset: UTC), loaded as an aware UTC datetime.

    A time whose UTC equivalent falls outside years 1-9999 (`0001-01-01T00:00:00+03:00`)
    is a validation error rather than an OverflowError deeper down.
    """

    default_error_messages = {"out_of_range": "Not a representable UTC timestamp."}

    def __init__(self, **kwargs):
        super().__init__(default_timezone=timezone.utc, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        parsed = super()._deserialize(value, attr, data, **kwargs)
        try:
            return parsed.astimezone(timezone.utc)
        except OverflowError as error:
            raise self.make_error("out_of_range") from error


class MarketplaceApi(flask_smorest.Api):
    """Api whose documented error payload is the envelope of API.md."""

    ERROR_SCHEMA = ErrorEnvelopeSchema

    def init_app(self, app, *, spec_kwargs=None):
        super().init_app(app, spec_kwargs=spec_kwargs)
        self.spec.components.security_scheme(
            "bearerAuth", {"type": "http", "scheme": "bearer", "description": "API token"}
        )

    def _register_error_handlers(self):
        """Error handling is ours (marketplace.errors), registered after this."""


class Blueprint(flask_smorest.Blueprint):
    """A smorest Blueprint with `auth(*roles)` and `errors(*statuses)` helpers."""

    ARGUMENTS_PARSER = Parser()

    def auth(self, *roles: str):
        """Require a bearer token (and one of `roles` when given); document 401/403."""
        from marketplace.auth.guard import require_auth

        def decorator(fn):
            wrapped = require_auth(*roles)(fn)
            wrapped = self.doc(security=[{"bearerAuth": []}])(wrapped)
            wrapped = self.alt_response(401, response=HTTPStatus(401).name)(wrapped)
            if roles:
                wrapped = self.alt_response(403, response=HTTPStatus(403).name)(wrapped)
            return wrapped

        return decorator

    def arguments(self, schema, *, location: str = "json", **kwargs):
        """smorest's `arguments`; a JSON body also documents the 400 `invalid_json` answer
        and the 413 of a body over MAX_BODY_BYTES."""
        parse = super().arguments(schema, location=location, **kwargs)
        if location != "json":
            return parse

        def decorator(fn):
            fn = self.alt_response(400, response=HTTPStatus(400).name)(parse(fn))
            return self.alt_response(413, response=HTTPStatus(413).name)(fn)

        return decorator

    def errors(self, *statuses: int):
        """Document the error statuses a route can answer with."""

        def decorator(fn):
            for status in statuses:
                fn = self.alt_response(status, response=HTTPStatus(status).name)(fn)
            return fn

        return decorator


class StrictBoolean(fields.Boolean):
    """JSON `true` or `false` only: not "yes", 1 or "on", which marshmallow's Boolean takes."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):  # 1 == True in Python: the type decides, not equality
            raise self.make_error("invalid", input=value)
        return value


class Currency(fields.String):
    """A currency this deployment supports (SUPPORTED_CURRENCIES), loaded in lower case.

    A code outside the list names no money this service can hold, so it is refused here
    rather than found to match nothing later.
    """

    default_error_messages = {"unsupported": "Must be one of: {supported}."}

    def _deserialize(self, value, attr, data, **kwargs):
        code = super()._deserialize(value, attr, data, **kwargs).lower()
        supported = current_app.config["SUPPORTED_CURRENCIES"]
        if code not in supported:
            raise self.make_error("unsupported", supported=", ".join(supported))
        return code
