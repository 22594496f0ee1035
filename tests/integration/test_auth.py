"""Registration, tokens and the bearer guard."""
from datetime import timedelta

import pytest
from flask import Blueprint
from sqlalchemy import select

from marketplace.auth.guard import require_auth
from marketplace.auth.models import ApiToken, User
from marketplace.auth.service import hash_token
from marketplace.database import utcnow
from marketplace.extensions import db

PASSWORD = "correct horse battery"


def register(client, email="ann@example.com", role="shopper", password=PASSWORD):
    return client.post("/api/auth/register", json={"email": email, "password": password, "role": role})


def test_register_then_token_then_me(client):
    created = register(client, "Ann@Example.com")
    assert created.status_code == 201
    body = created.get_json()
    assert body["email"] == "ann@example.com" and body["role"] == "shopper" and body["id"].startswith("usr_")
    assert "password" not in body and "password_hash" not in body

    issued = client.post("/api/auth/tokens", json={"email": "ANN@example.com", "password": PASSWORD})
    assert issued.status_code == 201
    token = issued.get_json()["token"]
    assert issued.get_json()["expires_at"].endswith("Z")
    me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.get_json()["id"] == body["id"]


def test_tokens_and_passwords_are_stored_hashed(client):
    register(client)
    token = client.post("/api/auth/tokens", json={"email": "ann@example.com", "password": PASSWORD}).get_json()["token"]
    user = db.session.scalar(select(User))
    assert PASSWORD not in user.password_hash and user.password_hash.startswith("scrypt:")
    stored = db.session.scalar(select(ApiToken))
    assert stored.token_hash == hash_token(token) and token not in stored.token_hash


def test_duplicate_email_is_409_email_taken(client):
    assert register(client).status_code == 201
    again = register(client, "ANN@example.com", role="vendor")
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "email_taken"


def test_admin_cannot_self_register(client):
    assert register(client, role="admin").status_code == 422


def test_unknown_email_and_wrong_password_answer_alike(client):
    register(client)
    wrong = client.post("/api/auth/tokens", json={"email": "ann@example.com", "password": "not the password"})
    unknown = client.post("/api/auth/tokens", json={"email": "bob@example.com", "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json() == unknown.get_json()
    assert wrong.get_json()["error"]["code"] == "invalid_credentials"


@pytest.fixture
def admin_only(app):
    bp = Blueprint("admin_probe", __name__)

    @bp.route("/probe/admin")
    @require_auth("admin")
    def probe():
        return {"ok": True}

    app.register_blueprint(bp)
    return app.test_client()


def _expired_token_headers(auth):
    user, headers = auth.user("admin")
    token = db.session.scalar(select(ApiToken).where(ApiToken.user_id == user.id))
    token.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    return headers


@pytest.mark.parametrize(
    "make_headers, status, code",
    [
        (lambda auth: {}, 401, "unauthorized"),
        (lambda auth: {"Authorization": "Bearer mkt_not-a-real-token"}, 401, "unauthorized"),
        (lambda auth: {"Authorization": "Basic dXNlcjpwYXNz"}, 401, "unauthorized"),
        (_expired_token_headers, 401, "unauthorized"),
        (lambda auth: auth.headers("shopper"), 403, "forbidden"),
        (lambda auth: auth.headers("vendor"), 403, "forbidden"),
        (lambda auth: auth.headers("admin"), 200, None),
    ],
    ids=["no-token", "bad-token", "wrong-scheme", "expired", "shopper", "vendor", "admin"],
)
def test_auth_matrix(admin_only, auth, make_headers, status, code):
    response = admin_only.get("/probe/admin", headers=make_headers(auth))
    assert response.status_code == status
    if code:
        assert response.get_json()["error"]["code"] == code
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_create_admin_command(app):
    from marketplace.auth.cli import users_cli

    result = app.test_cli_runner().invoke(users_cli, ["create-admin", "Root@Example.com", "--password", "a" * 12])
    assert result.exit_code == 0, result.output
    assert db.session.scalar(select(User.role).where(User.email == "root@example.com")) == "admin"
    again = app.test_cli_runner().invoke(users_cli, ["create-admin", "root@example.com", "--password", "a" * 12])
    assert again.exit_code != 0 and "already registered" in again.output
    short = app.test_cli_runner().invoke(users_cli, ["create-admin", "x@example.com", "--password", "short"])
    assert short.exit_code != 0
