"""Hostile input is a 4xx in the envelope: bodies bounded before they are read, text that
cannot be stored, JSON too deep or too large to parse, unsupported currencies and loose
booleans refused; tokens revocable and capped; the client's address only from trusted proxies."""
import io
import json
import time

import pytest
from sqlalchemy import func, select

from marketplace.audit import AuditEntry
from marketplace.auth.models import ApiToken
from marketplace.extensions import db
from marketplace.input_guard import MAX_INTEGER_DIGITS, MAX_JSON_DEPTH
from marketplace.webhooks.models import WebhookEvent
from tests.factories import ProductFactory
from tests.webhook_helpers import PATH, deliver, event, signed

JSON = {"Content-Type": "application/json"}


def _error(response, status, code=None):
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:300])
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    if code:
        assert error["code"] == code, error
    return error


class Unreadable(io.RawIOBase):
    """A request body that fails the test if anything reads it."""

    def readable(self):
        return True

    def readinto(self, buffer):
        raise AssertionError("the body was read")


# --- body size ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/api/auth/register", "/api/auth/tokens", "/api/orders", PATH])
def test_an_oversized_body_is_refused_from_its_length_before_it_is_read(app, client, path):
    limit = app.config["WEBHOOK_MAX_BODY_BYTES" if path == PATH else "MAX_BODY_BYTES"]
    response = client.post(path, headers=JSON, environ_overrides={
        "CONTENT_LENGTH": str(limit + 1), "wsgi.input": Unreadable()})
    error = _error(response, 413, "request_entity_too_large")
    assert str(limit) in error["message"]


def test_a_chunked_body_is_cut_off_at_the_limit(app, client):
    app.config["MAX_BODY_BYTES"] = 4096
    body = io.BytesIO(b'{"email": "' + b"a" * 10_000 + b'"}')
    response = client.post("/api/auth/tokens", headers=JSON, environ_overrides={
        "wsgi.input": body, "wsgi.input_terminated": True})
    _error(response, 413)
    assert body.tell() <= 4096 + 65536  # read in chunks, never the whole of it


def test_stripe_deliveries_get_the_larger_limit(app, client):
    # A 300 KB event is over the API's limit and within the webhook route's.
    payload = event("customer.created", {"id": "cus_big", "object": "customer", "description": "x" * 300_000})
    response = deliver(client, payload)
    assert response.status_code == 200, response.get_json()
    big = client.post("/api/auth/tokens", data=json.dumps({"email": "x" * 300_000, "password": "p"}), headers=JSON)
    _error(big, 413)


# --- text that cannot be stored ----------------------------------------------------------

SURROGATE = "\ud800"


def _raw(client, path, text, headers=None):
    """POST a JSON text as given: json.dumps writes a lone surrogate as the escape `\\ud800`."""
    return client.post(path, data=text, headers={**JSON, **(headers or {})})


@pytest.mark.parametrize("field", ["email", "password"])
def test_a_lone_surrogate_in_credentials_is_a_validation_error(client, field):
    body = {"email": "a@example.com", "password": "correct horse battery", field: f"x{SURROGATE}y"}
    error = _error(_raw(client, "/api/auth/tokens", json.dumps(body)), 422, "validation_error")
    assert field in error["details"]


def test_a_lone_surrogate_in_a_registration_password_is_a_validation_error(client):
    body = {"email": "new@example.com", "password": "long enough password" + SURROGATE, "role": "shopper"}
    error = _error(_raw(client, "/api/auth/register", json.dumps(body)), 422)
    assert "password" in error["details"]


@pytest.mark.parametrize("field", ["name", "description"])
def test_a_lone_surrogate_in_a_product_is_a_validation_error(app, client, auth, field):
    from tests.factories import VendorFactory

    user, headers = auth.user("vendor")
    VendorFactory(user=user)
    body = {"name": "Mug", "price": 1200, "currency": "usd", "stock": 1, field: "Mug " + "\udc80"}
    error = _error(_raw(client, "/api/products", json.dumps(body), headers), 422)
    assert field in error["details"]


def test_a_lone_surrogate_in_an_order_line_or_a_payment_method_is_a_validation_error(client, auth):
    headers = auth.headers("shopper")
    order = _raw(client, "/api/orders", json.dumps({"items": [{"product_id": "prd_" + SURROGATE, "quantity": 1}]}),
                 headers)
    assert "items" in _error(order, 422)["details"]
    confirm = _raw(client, "/api/orders/ord_x/confirm", json.dumps({"payment_method": "pm_" + SURROGATE}), headers)
    assert "payment_method" in _error(confirm, 422)["details"]


def test_the_utf_8_of_a_surrogate_in_a_query_or_path_names_nothing(client):
    # A URL carries bytes: those of a surrogate are not UTF-8, and are read as U+FFFD.
    assert client.get("/api/products?vendor_id=ven_%ED%A0%80").get_json()["data"] == []
    _error(client.get("/api/products/prd_%ED%A0%80"), 404, "product_not_found")


# --- JSON the parser must not be handed ------------------------------------------------------

@pytest.mark.parametrize("path", ["/api/auth/register", "/api/auth/tokens", "/api/orders", "/api/admin/payout-runs"])
def test_json_nested_too_deep_is_refused_before_parsing(client, auth, path):
    depth = 100_000  # far past Python's recursion limit: a RecursionError if it were parsed
    role = "admin" if "admin" in path else "shopper"
    error = _error(_raw(client, path, "[" * depth + "]" * depth, auth.headers(role)), 400, "invalid_json")
    # the bound's own message: the parser (a RecursionError there) was never reached
    assert error["details"] == {"json": [f"JSON nested deeper than {MAX_JSON_DEPTH} levels"]}


def test_json_at_the_depth_limit_is_parsed():
    from marketplace.input_guard import loads

    text = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert loads(text) is not None
    assert loads('{"a": "' + "[" * 100 + '\\"{"}') == {"a": "[" * 100 + '"{'}  # brackets in strings


@pytest.mark.parametrize("path", ["/api/orders", "/api/auth/tokens", "/api/admin/payout-runs"])
def test_an_integer_too_long_to_be_money_is_refused(client, auth, path):
    text = '{"items": [{"product_id": "prd_x", "quantity": ' + "9" * 5000 + "}]}"
    error = _error(_raw(client, path, text, auth.headers("admin" if "admin" in path else "shopper")), 400, "invalid_json")
    assert error["details"] == {"json": [f"an integer longer than {MAX_INTEGER_DIGITS} digits"]}


def test_nan_and_infinity_are_not_json(client):
    for constant in ("NaN", "Infinity", "-Infinity"):
        _error(_raw(client, "/api/auth/tokens", '{"email": ' + constant + "}"), 400, "invalid_json")


def test_the_idempotency_fingerprint_survives_hostile_bodies(client, auth):
    headers = {**auth.headers("shopper"), "Idempotency-Key": "k-deep"}
    _error(_raw(client, "/api/orders", "[" * 5000 + "]" * 5000, headers), 400, "invalid_json")


# --- webhooks ----------------------------------------------------------------------------

def _stored() -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(WebhookEvent))


@pytest.mark.parametrize("raw", [
    '{"id": "evt_\\ud800", "object": "event", "type": "x.y", "livemode": false, "data": {"object": {}}}',
    '{"id": "evt_ok", "object": "event", "type": "x.\\udfffy", "livemode": false, "data": {"object": {}}}',
    '{"id": "evt_deep", "object": "event", "type": "x.y", "livemode": false, "data": {"object": '
    + "[" * 5000 + "]" * 5000 + "}}",
    '{"id": "evt_long", "object": "event", "type": "x.y", "livemode": false, "created": ' + "1" * 5000
    + ', "data": {"object": {}}}',
], ids=["surrogate-id", "surrogate-type", "deep", "huge-integer"])
def test_a_signed_but_unusable_event_is_refused_and_not_stored(client, raw):
    body, headers = signed(raw)
    _error(client.post(PATH, data=body, headers=headers), 400, "invalid_payload")
    assert _stored() == 0


def test_a_signature_from_the_future_is_refused(client):
    _error(deliver(client, event(), timestamp=int(time.time()) + 301), 400, "invalid_signature")
    assert _stored() == 0
    assert deliver(client, event(), timestamp=int(time.time()) + 30).status_code == 200  # clock skew within tolerance


# --- strict fields -----------------------------------------------------------------------

def test_a_payout_run_in_an_unsupported_currency_is_refused(client, auth):
    admin = auth.headers("admin")
    error = _error(client.post("/api/admin/payout-runs", json={"currency": "xxx"}, headers=admin), 422)
    assert "currency" in error["details"]
    assert client.post("/api/admin/payout-runs", json={"currency": "USD", "dry_run": True},
                       headers=admin).get_json()["currency"] == "usd"


@pytest.mark.parametrize("value", ["yes", "true", 1, 0, "on", None])
def test_booleans_are_json_booleans(client, auth, value):
    error = _error(client.post("/api/admin/payout-runs", json={"dry_run": value}, headers=auth.headers("admin")), 422)
    assert "dry_run" in error["details"]


def test_a_product_flag_is_a_json_boolean(client, auth):
    from tests.factories import VendorFactory

    user, headers = auth.user("vendor")
    VendorFactory(user=user)
    body = {"name": "Mug", "price": 1200, "currency": "usd", "stock": 1, "active": "yes"}
    assert "active" in _error(client.post("/api/products", json=body, headers=headers), 422)["details"]


# --- tokens ------------------------------------------------------------------------------

def _token(client, email, password="correct horse battery"):
    response = client.post("/api/auth/tokens", json={"email": email, "password": password})
    assert response.status_code == 201, response.get_json()
    return {"Authorization": f"Bearer {response.get_json()['token']}"}


def _actions(action):
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action))


def test_revoking_the_current_token_logs_out_that_token_only(client, auth):
    user, first = auth.user("shopper")
    second = _token(client, user.email)
    assert client.delete("/api/auth/tokens/current", headers=first).status_code == 204
    _error(client.get("/api/auth/me", headers=first), 401, "unauthorized")
    assert client.get("/api/auth/me", headers=second).status_code == 200
    assert _actions("token.revoked") == 1
    _error(client.delete("/api/auth/tokens/current", headers=first), 401)  # gone means gone


def test_revoking_every_token_logs_out_everywhere_and_no_one_else(client, auth):
    user, first = auth.user("shopper")
    second = _token(client, user.email)
    _, other = auth.user("shopper")
    assert client.delete("/api/auth/tokens", headers=second).status_code == 204
    for headers in (first, second):
        _error(client.get("/api/auth/me", headers=headers), 401)
    assert client.get("/api/auth/me", headers=other).status_code == 200
    assert _actions("token.revoked_all") == 1


def test_live_tokens_are_capped_per_user_oldest_revoked_first(app, client, auth):
    app.config["TOKEN_MAX_PER_USER"] = 3
    user, oldest = auth.user("shopper")
    newer = [_token(client, user.email) for _ in range(3)]
    _error(client.get("/api/auth/me", headers=oldest), 401)
    assert [client.get("/api/auth/me", headers=h).status_code for h in newer] == [200, 200, 200]
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(ApiToken).where(ApiToken.user_id == user.id)) == 3
    assert _actions("token.revoked_oldest") == 1


def test_concurrent_logins_cannot_pass_the_cap(app, auth):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers anyway; the row lock is PostgreSQL's")
    import threading

    app.config["TOKEN_MAX_PER_USER"] = 2
    user, _ = auth.user("shopper")
    email, user_id = user.email, user.id
    db.session.remove()
    barrier, statuses = threading.Barrier(6), []

    def login():
        with app.app_context():
            barrier.wait()
            statuses.append(app.test_client().post(
                "/api/auth/tokens", json={"email": email, "password": "correct horse battery"}).status_code)
            db.session.remove()

    threads = [threading.Thread(target=login) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [201] * 6
    assert db.session.scalar(select(func.count()).select_from(ApiToken).where(ApiToken.user_id == user_id)) == 2


# --- proxies and the fraud checks --------------------------------------------------------

def _order(client, headers, product, forwarded_for, remote="10.9.9.9"):
    return client.post("/api/orders", json={"items": [{"product_id": product.id, "quantity": 1}]},
                       headers={**headers, "X-Forwarded-For": forwarded_for}, environ_base={"REMOTE_ADDR": remote})


def test_forwarded_addresses_are_ignored_without_trusted_proxies(app, client, auth):
    app.config["FRAUD_MAX_ORDERS"] = 2
    product = ProductFactory(price=1000, stock=50)
    statuses = [_order(client, auth.headers("shopper"), product, f"203.0.113.{n}").status_code for n in range(3)]
    assert statuses == [201, 201, 429]  # one peer: one client, whatever it claims


@pytest.mark.settings(TRUSTED_PROXIES=1)
def test_behind_a_trusted_proxy_each_client_is_counted_apart(app, client, auth):
    app.config["FRAUD_MAX_ORDERS"] = 2
    product = ProductFactory(price=1000, stock=50)
    clients = [_order(client, auth.headers("shopper"), product, f"203.0.113.{n}").status_code for n in range(4)]
    assert clients == [201] * 4  # four shoppers behind one proxy
    same = [_order(client, auth.headers("shopper"), product, "198.51.100.7").status_code for _ in range(3)]
    assert same == [201, 201, 429]  # one client address behind it, several accounts
    # Only the last hop is the proxy's: an address the client put before it is not believed.
    assert _order(client, auth.headers("shopper"), product, "1.2.3.4, 198.51.100.7").status_code == 429


@pytest.mark.settings(TRUSTED_PROXIES=1, RATELIMIT_TOKENS="2 per minute")
def test_behind_a_trusted_proxy_rate_limits_key_on_the_client(client):
    def attempt(address):
        return client.post("/api/auth/tokens", json={"email": "a@example.com", "password": "x"},
                           headers={"X-Forwarded-For": address}, environ_base={"REMOTE_ADDR": "10.9.9.9"}).status_code

    assert [attempt("203.0.113.1") for _ in range(3)] == [401, 401, 429]
    assert attempt("203.0.113.2") == 401  # another client behind the same proxy


@pytest.mark.settings(RATELIMIT_ENABLED=False, FRAUD_MAX_ORDERS=2)
def test_checkout_works_on_an_app_made_with_rate_limits_off(client, auth):
    headers = auth.headers("shopper")
    product = ProductFactory(price=1000, stock=50)
    assert [_order(client, headers, product, "").status_code for _ in range(3)] == [201, 201, 429]


# --- events about nothing, and races -------------------------------------------------------

@pytest.mark.needs("emulator")
@pytest.mark.parametrize("type_, obj", [
    ("payout.paid", {"id": "po_nothing_here", "object": "payout"}),
    ("charge.dispute.created", {"id": "dp_nothing_here", "object": "dispute", "charge": "ch_nothing_here"}),
])
def test_an_event_about_an_object_stripe_does_not_have_is_ignored_at_once(client, type_, obj):
    payload = event(type_, obj)
    assert deliver(client, payload).status_code == 200
    row = db.session.scalar(select(WebhookEvent).where(WebhookEvent.stripe_event_id == payload["id"]))
    assert (row.status, row.attempts, row.next_attempt_at) == ("ignored", 1, None), row.last_error
    assert row.reason == f"Stripe has no {obj['object']} '{obj['id']}'", row.reason


@pytest.mark.needs("emulator")
@pytest.mark.parametrize("type_, obj", [
    ("payment_intent.succeeded", {"id": "pi_nothing_here", "object": "payment_intent"}),
    ("charge.updated", {"id": "ch_nothing_here", "object": "charge", "status": "succeeded",
                        "payment_intent": "pi_nothing_here", "balance_transaction": "txn_nothing_here"}),
])
def test_an_event_about_a_payment_that_is_not_ours_is_ignored_without_asking_stripe(client, emulator, type_, obj):
    import requests

    requests.delete(f"{emulator.url}/_emulator/requests", timeout=10).raise_for_status()
    payload = event(type_, obj)
    assert deliver(client, payload).status_code == 200
    row = db.session.scalar(select(WebhookEvent).where(WebhookEvent.stripe_event_id == payload["id"]))
    assert (row.status, row.attempts) == ("ignored", 1), row.last_error
    assert row.reason.startswith("nothing here to apply it to") and obj["id"] in row.reason
    assert requests.get(f"{emulator.url}/_emulator/requests", timeout=10).json()["total"] == 0


@pytest.mark.needs("emulator")
def test_a_confirmation_racing_a_cancel_is_a_conflict(client, auth, emulator):
    from marketplace import stripe_gateway
    from tests.payments_helpers import onboarded_vendor, order_for

    headers = auth.headers("shopper")
    order = order_for(client, headers, [onboarded_vendor(emulator)], [1500])
    intent = client.post(f"/api/orders/{order['id']}/payment-intent", headers=headers).get_json()
    # The cancel reached Stripe; its own commit has not happened yet.
    stripe_gateway.cancel_payment_intent(intent["payment_intent_id"], f"race-{order['id']}")
    confirm = client.post(f"/api/orders/{order['id']}/confirm", json={"payment_method": "pm_card_visa"}, headers=headers)
    _error(confirm, 409, "order_not_payable")


@pytest.mark.needs("emulator")
def test_a_cancel_racing_a_confirmation_is_a_conflict(client, auth, emulator, monkeypatch):
    from marketplace import stripe_gateway
    from tests.payments_helpers import onboarded_vendor, order_for

    headers = auth.headers("shopper")
    order = order_for(client, headers, [onboarded_vendor(emulator)], [1500])
    intent_id = client.post(f"/api/orders/{order['id']}/payment-intent", headers=headers).get_json()["payment_intent_id"]
    before = stripe_gateway.retrieve_payment_intent(intent_id)
    stripe_gateway.confirm_payment_intent(intent_id, "pm_card_visa", f"race-{order['id']}")
    # The cancel read the PaymentIntent just before the confirmation landed.
    reads = iter([before])
    real = stripe_gateway.retrieve_payment_intent
    monkeypatch.setattr(stripe_gateway, "retrieve_payment_intent", lambda pi, *a, **k: next(reads, None) or real(pi, *a, **k))
    _error(client.post(f"/api/orders/{order['id']}/cancel", headers=headers), 409, "payment_not_cancelable")


@pytest.mark.needs("emulator")
def test_an_event_about_an_object_that_is_not_ours_is_ignored_with_the_reason(client, emulator):
    from tests.payments_helpers import CARD_ONLY, emu

    intent = emu(emulator, "POST", "/v1/payment_intents", amount=1000, currency="usd", **CARD_ONLY)  # not the app's
    payload = event("payment_intent.payment_failed", {"id": intent["id"], "object": "payment_intent"})
    assert deliver(client, payload).status_code == 200
    row = db.session.scalar(select(WebhookEvent).where(WebhookEvent.stripe_event_id == payload["id"]))
    assert (row.status, row.attempts) == ("ignored", 1), row.last_error
    assert row.reason == f"nothing here to apply it to: no local record takes payment_intent '{intent['id']}' " \
                         "in its current state"
