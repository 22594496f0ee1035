"""The bearer-token check used by Blueprint.auth()."""
from __future__ import annotations

import functools

from flask import g, request

from marketplace.auth.models import User
from marketplace.auth.service import token_for
from marketplace.errors import Forbidden, Unauthorized

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="marketplace"'}


def current_user() -> User:
    """The authenticated user of this request (only inside an auth-guarded route)."""
    return g.current_user


def current_token_id() -> str:
    """The id of the token this request authenticated with."""
    return g.current_token_id


def require_auth(*roles: str):
    """401 without a live token; 403 when the user's role is not in `roles`."""

    def decorator(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("A bearer token is required.", headers=_CHALLENGE)
            row = token_for(token.strip())
            if row is None:
                raise Unauthorized("The token is invalid, revoked or expired.", headers=_CHALLENGE)
            user = row.user
            if roles and user.role not in roles:
                raise Forbidden()
            g.current_user, g.current_token_id = user, row.id
            try:
                return fn(*args, **kwargs)
            finally:
                # The user is the route's only: work done after it (jobs run inline once
                # the request committed) is the system's, and an application context that
                # outlives the request (tests, CLI) must not lend it to the next one.
                g.pop("current_user", None)
                g.pop("current_token_id", None)

        return wrapper

    return decorator
