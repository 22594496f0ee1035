"""Fault modes a chaos run needs, through HTTP: faults that trip on a random (seeded) share of
requests, and `lost`: the request is carried out, its answer never reaches the client."""
import time

import pytest
import requests
import stripe

CARD_ONLY = {"automatic_payment_methods[enabled]": "true",
             "automatic_payment_methods[allow_redirects]": "never"}
INTENT = {"amount": 1000, "currency": "usd"}


def _post(server, path, data, key=None):
    headers = {"Authorization": "Bearer sk_test_emulator"}
    if key:
        headers["Idempotency-Key"] = key
    return requests.post(server.url + path, data=data, headers=headers, timeout=10)


def _intents(server):
    return requests.get(server.url + "/v1/payment_intents", params={"limit": 100},
                        headers={"Authorization": "Bearer sk_test_emulator"}, timeout=10).json()["data"]


def _outcomes(server, n):
    return [_post(server, "/v1/payment_intents", INTENT).status_code for _ in range(n)]


def test_a_probability_fault_trips_on_a_seeded_share_of_requests(control, server):
    armed = control.post("faults", path_prefix="/v1/payment_intents", mode="error",
                         method="POST", count=1000, probability=0.3, seed=7)
    assert armed["probability"] == 0.3 and armed["tripped"] == 0
    first = _outcomes(server, 60)
    failed = first.count(500)
    assert set(first) == {200, 500} and 5 <= failed <= 35  # about 30 %
    [listed] = control.get("faults")["data"]
    assert listed["matched"] == 60 and listed["tripped"] == failed and listed["count"] == 1000 - failed
    assert len(_intents(server)) == 60 - failed  # a tripped request changed nothing
    control.post("reset")
    control.post("faults", path_prefix="/v1/payment_intents", mode="error", method="POST",
                 count=1000, probability=0.3, seed=7)
    assert _outcomes(server, 60) == first  # the same seed, the same requests fail


def test_a_probability_fault_lasts_only_its_count_and_others_still_trip(control, server):
    control.post("faults", path_prefix="/v1/payment_intents", mode="rate_limit", count=3,
                 probability=1.0)
    control.post("faults", path_prefix="/v1/payment_intents", mode="error", count=100,
                 probability=0.0)
    control.post("faults", path_prefix="/v1/payment_intents", mode="error", count=2)
    assert _outcomes(server, 7) == [429, 429, 429, 500, 500, 200, 200]
    [never] = control.get("faults")["data"]  # the spent ones are gone
    # it saw every request the first fault did not take, and let each one pass on
    assert never["probability"] == 0.0 and never["matched"] == 4 and never["tripped"] == 0


@pytest.mark.parametrize("body", [{"probability": 1.5}, {"probability": -0.1}, {"probability": "x"},
                                  {"seed": {"a": 1}}, {"mode": "vanish"}])
def test_a_fault_that_makes_no_sense_is_refused(control, server, body):
    fault = {"path_prefix": "/v1/", "mode": "error", **body}
    answer = requests.post(server.url + "/_emulator/faults", json=fault, timeout=10)
    assert answer.status_code == 400, answer.text
    assert control.get("faults")["data"] == []


def test_a_lost_request_is_carried_out_and_its_answer_replayed_under_its_key(control, server):
    control.post("faults", path_prefix="/v1/payment_intents", mode="lost", method="POST")
    lost = _post(server, "/v1/payment_intents", INTENT, key="lost-1")
    assert lost.status_code == 500 and lost.json()["error"]["type"] == "api_error"
    assert lost.headers["Stripe-Should-Retry"] == "true"
    [made] = _intents(server)  # the money path ran although the client saw an error
    again = _post(server, "/v1/payment_intents", INTENT, key="lost-1")
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == made["id"]
    assert len(_intents(server)) == 1
    assert _post(server, "/v1/payment_intents", INTENT).status_code == 200  # spent: count 1


def test_a_lost_refusal_is_replayed_as_the_refusal(control, server):
    control.post("faults", path_prefix="/v1/payment_intents", mode="lost", status=502)
    declined = dict(CARD_ONLY, payment_method="pm_card_chargeDeclined", confirm="true", **INTENT)
    lost = _post(server, "/v1/payment_intents", declined, key="lost-declined")
    assert lost.status_code == 502
    again = _post(server, "/v1/payment_intents", declined, key="lost-declined")
    assert again.status_code == 402 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["error"]["code"] == "card_declined"


def test_the_stripe_package_sees_a_lost_answer_as_an_error_and_its_retry_finds_the_object(control, server):
    control.post("faults", path_prefix="/v1/payment_intents", mode="lost", count=2)
    once = stripe.StripeClient("sk_test_emulator", base_addresses={"api": server.url},
                               max_network_retries=0)
    with pytest.raises(stripe.APIError) as raised:
        once.v1.payment_intents.create(params=INTENT, options={"idempotency_key": "pkg-1"})
    assert raised.value.http_status == 500
    retrying = stripe.StripeClient("sk_test_emulator", base_addresses={"api": server.url},
                                   max_network_retries=2)
    made = retrying.v1.payment_intents.create(params=INTENT)  # lost once, retried, replayed
    assert made.id.startswith("pi_") and len(_intents(server)) == 2
    assert once.v1.payment_intents.create(params=INTENT, options={"idempotency_key": "pkg-1"}).id \
        == _intents(server)[-1]["id"]  # the first one, made by the request whose answer was lost


def test_a_lost_answer_past_the_client_timeout_is_no_answer_at_all(control, server):
    control.post("faults", path_prefix="/v1/payment_intents", mode="lost", seconds=0.8)
    short = stripe.StripeClient("sk_test_emulator", base_addresses={"api": server.url},
                                max_network_retries=0, http_client=stripe.RequestsClient(timeout=0.3))
    with pytest.raises(stripe.APIConnectionError):
        short.v1.payment_intents.create(params=INTENT, options={"idempotency_key": "slow-1"})
    assert len(_intents(server)) == 1  # made before the answer was held back
    time.sleep(0.7)
    again = _post(server, "/v1/payment_intents", INTENT, key="slow-1")
    assert again.headers["Idempotent-Replayed"] == "true" and again.json()["id"] == _intents(server)[0]["id"]
