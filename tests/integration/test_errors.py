"""The error envelope for Flask's own errors, validation errors and crashes."""
import pytest


def assert_envelope(response, status, code):
    assert response.status_code == status
    body = response.get_json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    return body["error"]


def test_unknown_path_is_404_envelope(client):
    assert_envelope(client.get("/api/nothing-here"), 404, "not_found")


def test_wrong_method_is_405_envelope_with_allow(client):
    response = client.delete("/api/auth/register")
    assert_envelope(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_validation_error_maps_each_field(client):
    response = client.post("/api/auth/register", json={"email": "not-an-email", "password": "short",
                                                        "role": "admin", "extra": 1})
    error = assert_envelope(response, 422, "validation_error")
    assert set(error["details"]) == {"email", "password", "role", "extra"}
    assert error["details"]["extra"] == ["Unknown field."]


def test_malformed_json_is_an_envelope(client):
    response = client.post("/api/auth/register", data="{nope", content_type="application/json")
    assert response.status_code in (400, 422)
    assert "error" in response.get_json()


@pytest.fixture
def crashing_app(app):
    secret = app.config["STRIPE_SECRET_KEY"]

    @app.route("/boom")
    def boom():
        raise RuntimeError(f"SELECT * FROM users -- {secret}")

    return app


def test_unhandled_exception_is_500_with_request_id_only(crashing_app):
    client = crashing_app.test_client()
    response = client.get("/boom", headers={"X-Request-Id": "req-abc.123"})
    error = assert_envelope(response, 500, "internal_error")
    assert error["details"] == {"request_id": "req-abc.123"}
    text = response.get_data(as_text=True)
    for leak in ("SELECT", "Traceback", "RuntimeError", crashing_app.config["STRIPE_SECRET_KEY"]):
        assert leak not in text


def test_request_id_is_echoed_or_generated(client):
    assert client.get("/healthz", headers={"X-Request-Id": "abc-123"}).headers["X-Request-Id"] == "abc-123"
    generated = client.get("/healthz", headers={"X-Request-Id": "bad id with spaces"}).headers["X-Request-Id"]
    assert generated and " " not in generated and generated != "bad id"
    assert len(client.get("/healthz").headers["X-Request-Id"]) == 32
