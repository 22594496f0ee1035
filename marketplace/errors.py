"""Error types and the JSON error envelope used for every status >= 400."""
from __future__ import annotations

import logging
import re
from typing import Any

from flask import Flask, g, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class AppError(Exception):
    """An error with a status, a snake_case code and a safe, human-readable message."""

    status = 400
    code = "bad_request"
    message = "The request could not be processed."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message or self.message)
        self.message = message or self.message
        self.code = code or self.code
        self.status = status or self.status
        self.details = details or {}
        self.headers = headers or {}


class Unauthorized(AppError):
    status, code, message = 401, "unauthorized", "Authentication required."


class Forbidden(AppError):
    status, code, message = 403, "forbidden", "You are not allowed to do this."


class NotFound(AppError):
    status, code, message = 404, "not_found", "Not found."


class Conflict(AppError):
    status, code, message = 409, "conflict", "The request conflicts with the current state."


class ValidationFailed(AppError):
    status, code, message = 422, "validation_error", "The request body is invalid."


class ServiceUnavailable(AppError):
    status, code, message = 503, "service_unavailable", "A dependency is unavailable."


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict:
    """The envelope of API.md."""
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(status: int, code: str, message: str, details=None, headers=None):
    """A Flask response carrying the envelope."""
    response = jsonify(error_body(code, message, details))
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _flatten_validation(messages: Any) -> dict[str, Any]:
    """webargs nests messages under the location ('json', 'query'); callers want fields."""
    if not isinstance(messages, dict):
        return {"_schema": messages}
    flat: dict[str, Any] = {}
    for location, fields in messages.items():
        if isinstance(fields, dict):
            flat.update(fields)
        else:
            flat[location] = fields
    return flat


def handle_app_error(error: AppError):
    return error_response(error.status, error.code, error.message, error.details, error.headers)


def handle_http_exception(error: HTTPException):
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    headers = {}
    valid_methods = getattr(error, "valid_methods", None)
    if status == 405 and valid_methods:
        headers["Allow"] = ", ".join(valid_methods)
    if status == 422:
        details = _flatten_validation(data.get("messages") or data.get("errors") or {})
        return error_response(422, "validation_error", "The request is invalid.", details)
    if status == 400 and "messages" in data:
        details = _flatten_validation(data["messages"])
        return error_response(400, "invalid_json", "The request body is not valid JSON.", details)
    if status >= 500:
        return handle_unexpected(error)
    message = error.description if isinstance(error.description, str) else error.name
    return error_response(status, _snake(error.name), message, None, headers)


def handle_unexpected(error: Exception):
    """500 with the request id only: no trace, no SQL, no secret."""
    request_id = g.get("request_id")
    if not isinstance(error, HTTPException):
        log.exception("unhandled error", extra={"request_id": request_id})
    return error_response(
        500,
        "internal_error",
        "An unexpected error occurred. Quote the request id when reporting it.",
        {"request_id": request_id},
    )


def register_error_handlers(app: Flask) -> None:
    """Route every error, Flask's own included, through the envelope."""
    app.register_error_handler(AppError, handle_app_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
