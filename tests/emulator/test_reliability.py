"""Idempotency keys, injected faults, authentication and request plumbing."""
import json
import threading
import time

import pytest
import requests
import stripe

from .helpers import bts, opts, pay


CARD_ONLY = {"automatic_payment_methods[enabled]": "true",
             "automatic_payment_methods[allow_redirects]": "never"}


def _post(server, path, data, key=None, account=None, api_key="sk_test_emulator"):
    headers = {"Authorization": "Bearer " + api_key}
    if key:
        headers["Idempotency-Key"] = key
    if account:
        headers["Stripe-Account"] = account
    return requests.post(server.url + path, data=data, headers=headers)


def test_idempotent_replay(client, server, emu):
    first = _post(server, "/v1/payment_intents", dict(CARD_ONLY, **{
        "amount": 1000, "currency": "usd", "payment_method": "pm_card_visa",
        "confirm": "true", "capture_method": "automatic"}), key="order-1")
    again = _post(server, "/v1/payment_intents", dict(CARD_ONLY, **{
        "amount": 1000, "currency": "usd", "payment_method": "pm_card_visa",
        "confirm": "true", "capture_method": "automatic"}), key="order-1")
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.json() == first.json()
    assert len(bts(client)) == 1
    # through the stripe package too
    pi = pay(client, 500, key="order-2")
    assert pay(client, 500, key="order-2").id == pi.id
    # a declined card's 402 is replayed as well
    for _ in range(2):
        resp = _post(server, "/v1/payment_intents", dict(CARD_ONLY, **{
            "amount": 1000, "currency": "usd", "payment_method": "pm_card_chargeDeclined",
            "confirm": "true"}), key="order-3")
        assert resp.status_code == 402
    assert resp.headers["Idempotent-Replayed"] == "true"


def test_idempotency_key_reused_with_other_params(client, server):
    pay(client, 1000, key="k")
    with pytest.raises(stripe.IdempotencyError) as err:
        pay(client, 2000, key="k")
    assert err.value.http_status == 400
    assert err.value.error.type == "idempotency_error"
    # the key also belongs to its first path
    with pytest.raises(stripe.IdempotencyError):
        client.v1.refunds.create(params={"charge": "ch_x"}, options=opts(key="k"))


def test_idempotency_scoped_per_account_and_key(client, control, vendor, server):
    a = _post(server, "/v1/payment_intents", {"amount": 1000, "currency": "usd"}, key="s")
    b = _post(server, "/v1/payment_intents", {"amount": 1000, "currency": "usd"}, key="s",
              account=vendor)
    c = _post(server, "/v1/payment_intents", {"amount": 1000, "currency": "usd"}, key="s",
              api_key="sk_test_other")
    assert len({a.json()["id"], b.json()["id"], c.json()["id"]}) == 3
    assert "Idempotent-Replayed" not in b.headers
    # kept for 24 hours of emulator time, then forgotten
    control.advance(23 * 3600)
    d = _post(server, "/v1/payment_intents", {"amount": 1000, "currency": "usd"}, key="s")
    assert d.json()["id"] == a.json()["id"]
    control.advance(2 * 3600)
    e = _post(server, "/v1/payment_intents", {"amount": 1000, "currency": "usd"}, key="s")
    assert e.json()["id"] != a.json()["id"]


def test_concurrent_use_of_a_key_is_409(client, control, server):
    control.post("faults", path_prefix="/v1/payment_intents", mode="delay", seconds=0.5,
                 count=1)
    results = {}

    def first():
        results["first"] = _post(server, "/v1/payment_intents",
                                 {"amount": 1000, "currency": "usd"}, key="busy")
    thread = threading.Thread(target=first)
    thread.start()
    time.sleep(0.15)
    second = _post(server, "/v1/payment_intents", {"amount": 1000, "currency": "usd"},
                   key="busy")
    thread.join()
    assert second.status_code == 409
    assert second.json()["error"]["type"] == "idempotency_error"
    assert second.json()["error"]["code"] == "idempotency_key_in_use"
    assert second.headers["Stripe-Should-Retry"] == "true"
    assert results["first"].status_code == 200
    third = _post(server, "/v1/payment_intents", {"amount": 1000, "currency": "usd"},
                  key="busy")
    assert third.headers["Idempotent-Replayed"] == "true"


def test_validation_errors_are_not_stored(server):
    bad = _post(server, "/v1/payment_intents", {"amount": 10, "currency": "usd"}, key="v")
    assert bad.status_code == 400
    good = _post(server, "/v1/payment_intents", {"amount": 1000, "currency": "usd"},
                 key="v")
    assert good.status_code == 200


def test_error_fault_changes_nothing_and_retry_succeeds(client, control, server):
    control.post("faults", path_prefix="/v1/payment_intents", mode="error", count=1)
    with pytest.raises(stripe.APIError) as err:
        pay(client, 1000, key="f1")
    assert err.value.http_status == 500 and err.value.error.type == "api_error"
    assert client.v1.payment_intents.list().data == []
    assert pay(client, 1000, key="f1").status == "succeeded"
    control.post("faults", path_prefix="/v1/balance", mode="error", count=1, status=503)
    assert requests.get(server.url + "/v1/balance",
                        headers={"Authorization": "Bearer sk_test_x"}).status_code == 503
    control.post("faults", path_prefix="/v1/", mode="rate_limit", count=5)
    with pytest.raises(stripe.RateLimitError):
        client.v1.balance.retrieve()
    assert control.get("faults")["data"][0]["count"] == 4
    requests.delete(server.url + "/_emulator/faults")
    assert client.v1.balance.retrieve().object == "balance"


def test_timeout_fault(client, control, server):
    control.post("faults", path_prefix="/v1/transfers", mode="timeout", count=1,
                 seconds=1.0)
    short = stripe.StripeClient("sk_test_emulator", base_addresses={"api": server.url},
                                max_network_retries=0,
                                http_client=stripe.RequestsClient(timeout=0.3))
    with pytest.raises(stripe.APIConnectionError):
        short.v1.transfers.list()
    time.sleep(0.8)
    assert client.v1.transfers.list().data == []


def test_stripe_client_retries_a_500(control, server):
    control.post("faults", path_prefix="/v1/payment_intents", mode="error", count=1)
    retrying = stripe.StripeClient("sk_test_emulator", base_addresses={"api": server.url},
                                   max_network_retries=2)
    pi = retrying.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    assert pi.id.startswith("pi_")
    assert len(retrying.v1.payment_intents.list().data) == 1


def test_authentication(server, emu):
    url = server.url + "/v1/balance"
    assert requests.get(url).status_code == 401
    bad = requests.get(url, headers={"Authorization": "Bearer pk_test_nope"})
    assert bad.status_code == 401
    assert bad.json()["error"]["type"] == "authentication_error"
    assert bad.headers["Request-Id"].startswith("req_")
    assert requests.get(url, auth=("sk_test_abc", "")).status_code == 200
    assert requests.get(url, headers={"Authorization": "Bearer sk_test_abc"}).ok
    with pytest.raises(stripe.AuthenticationError):
        stripe.StripeClient("sk_live_x", base_addresses={"api": server.url}).v1.balance \
            .retrieve()
    missing = requests.get(server.url + "/v1/nothing",
                           headers={"Authorization": "Bearer sk_test_abc"})
    assert missing.status_code == 404
    other = requests.get(url, headers={"Authorization": "Bearer sk_test_abc",
                                       "Stripe-Account": "acct_nobody"})
    assert other.status_code == 403


@pytest.mark.emulator_only  # a fresh platform account
def test_nested_form_parameters_and_expand(client, server, vendor):
    body = ("amount=1000&currency=usd&payment_method=pm_card_visa&confirm=true"
            "&capture_method=automatic&automatic_payment_methods[enabled]=true"
            "&automatic_payment_methods[allow_redirects]=never"
            "&transfer_data[destination]=%s&application_fee_amount=100"
            "&metadata[order]=77&metadata[note]=a%%20b&expand[]=latest_charge"
            "&expand[]=latest_charge.balance_transaction" % vendor)
    resp = requests.post(server.url + "/v1/payment_intents", data=body, headers={
        "Authorization": "Bearer sk_test_x",
        "Content-Type": "application/x-www-form-urlencoded"})
    pi = resp.json()
    assert pi["metadata"] == {"order": "77", "note": "a b"}
    assert pi["latest_charge"]["balance_transaction"]["fee"] == 59
    got = requests.get(server.url + "/v1/charges/%s" % pi["latest_charge"]["id"],
                       params=[("expand[]", "transfer"), ("expand[]", "application_fee"),
                               ("expand[]", "balance_transaction")],
                       headers={"Authorization": "Bearer sk_test_x"}).json()
    assert got["transfer"]["destination"] == vendor
    assert got["application_fee"]["amount"] == 100
    transfer = client.v1.transfers.retrieve(got["transfer"]["id"], params={
        "expand": ["source_transaction", "destination_payment.balance_transaction"]})
    assert transfer.source_transaction.id == pi["latest_charge"]["id"]
    assert transfer.destination_payment.balance_transaction.net == 900
    created = requests.get(server.url + "/v1/balance_transactions", params={
        "created[gte]": str(pi["created"]), "type": "charge", "limit": "5"},
        headers={"Authorization": "Bearer sk_test_x"}).json()
    assert [bt["type"] for bt in created["data"]] == ["charge"]
    assert json.loads(resp.text)["object"] == "payment_intent"
