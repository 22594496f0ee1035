"""What no input may do: reach the database or a parser in a shape they cannot take.

- NUL characters and lone surrogates never reach the database: PostgreSQL text cannot hold
  a NUL, and a lone surrogate (`"\\ud800"`, valid JSON) cannot be encoded as UTF-8 at all.
  A JSON body or query string carrying one is a 422 `validation_error` naming the field;
  a path parameter carrying one names nothing that can exist, so it is a 404.
- JSON is parsed by `loads()` only: nesting deeper than `MAX_JSON_DEPTH`, an integer longer
  than `MAX_INTEGER_DIGITS` digits and the non-JSON constants (`NaN`, `Infinity`) are
  refused before (or instead of) anything is built from them: a 400 `invalid_json`.
- A body longer than `MAX_BODY_BYTES` (`WEBHOOK_MAX_BODY_BYTES` for Stripe's deliveries)
  is a 413, answered from its Content-Length before a byte of it is read; a chunked body
  is read up to one byte past the limit, and refused there.
"""
from __future__ import annotations

import json
import re
from typing import Any

from flask import Flask, current_app, request
from flask.json.provider import DefaultJSONProvider
from marshmallow import ValidationError
from webargs.core import missing
from webargs.flaskparser import FlaskParser, abort, is_json_request
from werkzeug.exceptions import RequestEntityTooLarge

from marketplace.errors import NotFound

NUL = "\x00"
MESSAGE = "Must not contain a NUL character."
SURROGATE_MESSAGE = "Must not contain a lone surrogate (not encodable as UTF-8)."
_SURROGATE = re.compile("[\ud800-\udfff]")

MAX_JSON_DEPTH = 32
# Amounts are at most 8 digits and ids are strings: 40 digits is far beyond any valid number,
# and far below the 4300 digits where Python's int() refuses (a ValueError deep in a parser).
MAX_INTEGER_DIGITS = 40

# The webhook route: Stripe's deliveries carry whole objects; they get their own limit.
WEBHOOK_ENDPOINT = "webhooks.receive_stripe_event"


class InvalidJSON(json.JSONDecodeError):
    """Not JSON this service parses; a JSONDecodeError so every caller's handling applies."""


def _text_error(value: str) -> list[str] | None:
    if NUL in value:
        return [MESSAGE]
    if _SURROGATE.search(value):
        return [SURROGATE_MESSAGE]
    return None


def text_errors(value: Any) -> Any:
    """Marshmallow-shaped messages for every string (key or value) that cannot be stored, else None."""
    if isinstance(value, str):
        return _text_error(value)
    if isinstance(value, dict):
        found = {}
        for key, item in value.items():
            if isinstance(key, str) and (errors := _text_error(key)) is not None:
                found[key] = errors
            elif (errors := text_errors(item)) is not None:
                found[key] = errors
        return found or None
    if isinstance(value, list):
        found = {index: errors for index, item in enumerate(value) if (errors := text_errors(item)) is not None}
        return found or None
    return None


def is_storable_text(value: str) -> bool:
    """True when `value` can be stored as text: no NUL, no lone surrogate."""
    return _text_error(value) is None


# A JSON string (escapes included) or one bracket: what nesting is counted over.
_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def _check_depth(text: str) -> None:
    # Fewer brackets than the limit cannot nest past it: most bodies stop here.
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return
    depth = 0
    for match in _STRUCTURE.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise InvalidJSON(f"JSON nested deeper than {MAX_JSON_DEPTH} levels", text, match.start())
        elif token in "]}":
            depth -= 1


def _integer(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise ValueError(f"an integer longer than {MAX_INTEGER_DIGITS} digits")
    return int(digits)


def _constant(name: str):
    raise ValueError(f"{name} is not JSON")


def loads(data: str | bytes) -> Any:
    """Parse JSON within the bounds above; InvalidJSON (a JSONDecodeError) otherwise."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidJSON(f"not UTF-8 ({error.reason})", repr(data[:40]), error.start) from None
    else:
        text = data
    _check_depth(text)
    try:
        return json.loads(text, parse_int=_integer, parse_constant=_constant)
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as error:
        raise InvalidJSON(str(error), text or " ", 0) from None


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, parsing through `loads()` (request.get_json and friends)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s)


class Parser(FlaskParser):
    """webargs' Flask parser: bounded JSON, and no NUL or lone surrogate in what it loads."""

    def _raw_load_json(self, req):
        if not is_json_request(req):
            return missing
        data = req.get_data(cache=True)
        if not data:
            raise json.JSONDecodeError("empty", "", 0)  # webargs: no body is `missing`
        return loads(data)

    def _handle_invalid_json_error(self, error, req, *args, **kwargs):
        reason = error.msg if isinstance(error, InvalidJSON) else "Invalid JSON body."
        abort(400, exc=error, messages={"json": [reason]})

    def _load_location_data(self, *, schema, req, location):
        data = super()._load_location_data(schema=schema, req=req, location=location)
        if location == "json":
            errors = text_errors(data)
        elif location == "query":
            errors = {key: found for key, value in req.args.items(multi=True)
                      if (found := _text_error(key) or _text_error(value))}
        else:
            errors = None
        if errors:
            raise ValidationError(errors if isinstance(errors, dict) else {"_schema": errors})
        return data


def body_limit() -> int:
    """The largest body the current request may carry, in bytes."""
    config = current_app.config
    if request.endpoint == WEBHOOK_ENDPOINT:
        return config["WEBHOOK_MAX_BODY_BYTES"]
    return config["MAX_BODY_BYTES"]


def register_input_guard(app: Flask) -> None:
    """Bounded JSON everywhere; oversized bodies refused first; bad path parameters are 404s."""
    app.json = BoundedJSONProvider(app)
    app.json.sort_keys = False

    @app.before_request
    def refuse_oversized_body():
        limit = body_limit()
        too_large = RequestEntityTooLarge(f"The request body is larger than {limit} bytes.")
        if request.content_length is not None:
            if request.content_length > limit:
                raise too_large
            return
        if request.environ.get("wsgi.input_terminated"):
            # Chunked: no length to judge by. Read at most one byte past the limit (kept for
            # the route); that byte says the body was longer.
            request.max_content_length = limit + 1
            if len(request.get_data(cache=True)) > limit:
                raise too_large

    @app.url_value_preprocessor
    def refuse_unstorable_path(endpoint, values):
        if values and any(isinstance(value, str) and not is_storable_text(value) for value in values.values()):
            raise NotFound()
