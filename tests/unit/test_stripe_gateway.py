"""stripe_gateway: Stripe errors become our errors, in one place, with nothing secret inside."""
import json

import stripe

from marketplace.errors import ServiceUnavailable, ValidationFailed
from marketplace.stripe_gateway import PaymentDeclined, RateLimited, StripeFailure, translate_error


def _body(**error):
    return {"error": error}


def test_card_errors_are_402_with_the_decline_code():
    body = _body(type="card_error", code="card_declined", decline_code="insufficient_funds", message="Your card has insufficient funds.")
    error = stripe.CardError("Your card has insufficient funds.", None, "card_declined", json.dumps(body), 402, body)
    mapped = translate_error(error)
    assert isinstance(mapped, PaymentDeclined)
    assert (mapped.status, mapped.code, mapped.details["decline_code"]) == (402, "card_declined", "insufficient_funds")


def test_rate_limit_is_429_with_retry_after():
    mapped = translate_error(stripe.RateLimitError("slow down", http_status=429))
    assert isinstance(mapped, RateLimited) and mapped.status == 429 and mapped.headers["Retry-After"]


def test_invalid_requests_are_502_unless_the_client_chose_the_param():
    body = _body(type="invalid_request_error", code="parameter_invalid", param="country", message="Country XX is not supported, key sk_test_123")
    error = stripe.InvalidRequestError(body["error"]["message"], "country", "parameter_invalid", json.dumps(body), 400, body)
    ours = translate_error(error)
    assert isinstance(ours, StripeFailure) and ours.status == 502 and ours.code == "stripe_error"
    theirs = translate_error(error, client_params=("country",))
    assert isinstance(theirs, ValidationFailed) and theirs.status == 422 and "country" in theirs.details
    for mapped in (ours, theirs):
        assert "sk_test" not in mapped.message and "sk_test" not in json.dumps(mapped.details)


def test_connection_and_server_errors_are_503_never_500():
    for error in (stripe.APIConnectionError("timed out"), stripe.APIError("boom", http_status=500)):
        mapped = translate_error(error)
        assert isinstance(mapped, ServiceUnavailable) and mapped.status == 503 and mapped.code == "stripe_unavailable"


def test_authentication_errors_are_502_without_the_key():
    mapped = translate_error(stripe.AuthenticationError("Invalid API Key provided: sk_live_****", http_status=401))
    assert mapped.status == 502 and "sk_live" not in mapped.message


def test_the_pace_lets_a_request_go_when_its_shared_window_is_unreachable(caplog):
    """Redis down must not stop every Stripe call: the request goes unpaced (Stripe's 429 is
    then the limit, an unknown outcome to every caller), and the lapse is logged."""
    import time

    from marketplace.stripe_gateway import Pace

    pace = Pace(1, 1, "redis://127.0.0.1:1/0")  # nothing listens there
    started = time.monotonic()
    pace.take("GET")
    pace.take("POST")
    assert time.monotonic() - started < 5
    assert "request sent unpaced" in caplog.text


def test_the_pace_makes_a_caller_wait_for_room_in_the_window():
    import time

    from marketplace.stripe_gateway import Pace

    pace = Pace(2, 0, "memory://")
    started = time.monotonic()
    for _ in range(3):
        pace.take("GET")  # the third waits for the first to leave the one-second window
    pace.take("POST")  # writes are not paced (0)
    assert 0.9 <= time.monotonic() - started < 2.5
