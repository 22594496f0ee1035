"""Structured JSON logs carry the request id and never a token, password, secret or card number."""
import json
import logging

import pytest

from marketplace.observability import JsonFormatter, redact

PASSWORD = "correct horse battery staple"


@pytest.mark.parametrize(
    "raw, leaked",
    [
        ("key sk_test_51Habc123", "51Habc123"),
        ("key sk_live_51Habc123", "51Habc123"),
        ("secret whsec_abcdef", "abcdef"),
        ("Authorization: Bearer mkt_AbC-123_xyz", "AbC-123_xyz"),
        ("token mkt_AbC-123_xyz", "AbC-123_xyz"),
        ("client_secret pi_3Nabc_secret_XyZ987", "XyZ987"),
        ('{"password": "hunter two words"}', "hunter two words"),
        ("card 4242 4242 4242 4242", "4242 4242 4242 4242"),
        ("card 4000000000000002", "4000000000000002"),
    ],
)
def test_redact_removes_secrets(raw, leaked):
    assert leaked not in redact(raw)


def test_redact_keeps_ids_amounts_and_timestamps():
    text = "order ord_01m8 acct_123 amount 1000 at 1795301482123"
    assert redact(text) == text


def test_a_flow_logs_json_lines_without_secrets(app, client, caplog):
    caplog.set_level(logging.DEBUG)
    app.config["STRIPE_SECRET_KEY"] = secret = "sk_test_supersecretvalue"

    @app.route("/probe/crash")
    def crash():
        raise RuntimeError(f"failed with key {secret} and password={PASSWORD}")

    client.post("/api/auth/register", json={"email": "log@example.com", "password": PASSWORD, "role": "shopper"})
    token = client.post("/api/auth/tokens", json={"email": "log@example.com", "password": PASSWORD}).get_json()["token"]
    client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    client.post("/api/auth/tokens", json={"email": "log@example.com", "password": "wrong " + PASSWORD})
    client.get("/probe/crash", headers={"X-Request-Id": "req-log-test", "Authorization": f"Bearer {token}"})

    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    assert lines, "the flow logged nothing"
    parsed = [json.loads(line) for line in lines]
    assert any(entry["request_id"] == "req-log-test" and entry["level"] == "ERROR" for entry in parsed)
    text = "\n".join(lines)
    for leak in (secret, PASSWORD, token, token[4:]):
        assert leak not in text
