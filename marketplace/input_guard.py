"""NUL characters never reach the database: PostgreSQL text cannot hold them (a DataError, a 500).

A JSON body or query string carrying one is a 422 `validation_error` naming the field; a path
parameter carrying one names nothing that can exist, so it is a 404.
"""
from __future__ import annotations

from typing import Any

from flask import Flask
from marshmallow import ValidationError
from webargs.flaskparser import FlaskParser

from marketplace.errors import NotFound

NUL = "\x00"
MESSAGE = "Must not contain a NUL character."


def _nul_errors(value: Any) -> Any:
    """Marshmallow-shaped messages for every string (key or value) holding a NUL, else None."""
    if isinstance(value, str):
        return [MESSAGE] if NUL in value else None
    if isinstance(value, dict):
        found = {}
        for key, item in value.items():
            if isinstance(key, str) and NUL in key:
                found[key] = [MESSAGE]
            elif (errors := _nul_errors(item)) is not None:
                found[key] = errors
        return found or None
    if isinstance(value, list):
        found = {index: errors for index, item in enumerate(value) if (errors := _nul_errors(item)) is not None}
        return found or None
    return None


class Parser(FlaskParser):
    """webargs' Flask parser, refusing NUL characters in the locations it loads."""

    def _load_location_data(self, *, schema, req, location):
        data = super()._load_location_data(schema=schema, req=req, location=location)
        if location == "json":
            errors = _nul_errors(data)
        elif location == "query":
            errors = {key: [MESSAGE] for key, value in req.args.items(multi=True) if NUL in key or NUL in value}
        else:
            errors = None
        if errors:
            raise ValidationError(errors if isinstance(errors, dict) else {"_schema": errors})
        return data


def register_input_guard(app: Flask) -> None:
    """A path parameter with a NUL in it is a 404, before any route looks it up."""

    @app.url_value_preprocessor
    def refuse_nul_in_path(endpoint, values):
        if values and any(isinstance(value, str) and NUL in value for value in values.values()):
            raise NotFound()
