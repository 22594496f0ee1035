"""POST /api/auth/register, POST and DELETE /api/auth/tokens, GET /api/auth/me."""
from marketplace.auth import service
from marketplace.auth.guard import current_token_id, current_user
from marketplace.auth.schemas import RegisterSchema, TokenRequestSchema, TokenSchema, UserSchema
from marketplace.database import isoformat
from marketplace.openapi import Blueprint
from marketplace.ratelimit import configured, ip_key, limiter

blp = Blueprint("auth", __name__, url_prefix="/api/auth", description="Registration and tokens")


@blp.route("/register", methods=["POST"])
@limiter.limit(configured("RATELIMIT_REGISTER"), key_func=ip_key)
@blp.errors(429)
@blp.arguments(RegisterSchema)
@blp.response(201, UserSchema)
@blp.errors(409)
def register(body):
    """Register a shopper or a vendor user."""
    return service.create_user(body["email"], body["password"], body["role"])


@blp.route("/tokens", methods=["POST"])
@limiter.limit(configured("RATELIMIT_TOKENS"), key_func=ip_key)
@blp.errors(429)
@blp.arguments(TokenRequestSchema)
@blp.response(201, TokenSchema)
@blp.errors(401)
def create_token(body):
    """Exchange email and password for a bearer token."""
    issued = service.issue_token(body["email"], body["password"])
    return {"token": issued.token, "expires_at": isoformat(issued.expires_at)}


@blp.route("/tokens/current", methods=["DELETE"])
@blp.auth()
@blp.response(204)
def revoke_current_token():
    """Revoke the token this request is made with (log out)."""
    service.revoke_token(current_user(), current_token_id())


@blp.route("/tokens", methods=["DELETE"])
@blp.auth()
@blp.response(204)
def revoke_all_tokens():
    """Revoke every token of the user (log out everywhere)."""
    service.revoke_all_tokens(current_user())


@blp.route("/me")
@blp.auth()
@blp.response(200, UserSchema)
def me():
    """The user the bearer token belongs to."""
    return current_user()
