"""The only module that talks to Stripe: one StripeClient per app, small calls, one error map.

Every call that creates something takes an idempotency key derived from a local id, so a
retry after a crash or a timeout can never create a second object. Stripe errors become
AppErrors here and nowhere else; messages never carry secrets or raw Stripe payloads.
"""
from __future__ import annotations

import functools
import json
import logging
import time
from typing import Any, Callable, Iterable, Iterator

import stripe
from flask import current_app

from marketplace import input_guard
from marketplace.errors import AppError, Conflict, ServiceUnavailable, ValidationFailed

log = logging.getLogger(__name__)

_EXTENSION = "stripe_client"
API_VERSION = stripe.api_version  # what every request sends, and what the app's endpoints ask events in
WEBHOOK_TOLERANCE = 300  # seconds, as Stripe's libraries default to
CANCELABLE_STATUSES = (
    "requires_payment_method", "requires_capture", "requires_confirmation", "requires_action",
    "processing",
)


class PaymentDeclined(AppError):
    status, code, message = 402, "card_declined", "The card was declined."


class RateLimited(AppError):
    status, code, message = 429, "rate_limited", "The payment provider is busy; retry later."


class StripeFailure(AppError):
    status, code, message = 502, "stripe_error", "The payment provider rejected the request."
    # True when Stripe refused the request's parameters before carrying anything out, so it
    # kept no result for its idempotency key (a `parameter_*` error or one naming a `param`);
    # any other refusal may have been carried out and saved under the key.
    refused_parameters = False


class StripeIdempotencyConflict(StripeFailure):
    """Stripe carried out a request under this key with other parameters: something was made
    under it, and asking with these cannot be answered until the key expires."""

    code, message = "stripe_idempotency_conflict", "The payment provider saw this request before with other details."


class StripeStateConflict(StripeFailure):
    """Stripe refused because the object moved meanwhile (`*_unexpected_state`: a
    PaymentIntent canceled or paid by a request that raced this one): a 409, not a 502."""

    status, code, message = 409, "stripe_state_conflict", "The payment changed meanwhile; read it again."


class StripeInFlight(AppError):
    """The same request (idempotency key) is still being processed by Stripe: outcome unknown."""

    status, code, message = 409, "stripe_request_in_flight", "The payment provider is still processing this request."


class InvalidWebhook(AppError):
    status, code, message = 400, "invalid_signature", "The webhook signature could not be verified."


class LoginLinkRefused(AppError):
    """Stripe will not make an Express Dashboard login link for the account (it has not
    completed onboarding, or has no Express Dashboard): the account's state, a 409."""

    status, code, message = 409, "dashboard_unavailable", "Stripe has no Express Dashboard for this account yet."


def client() -> stripe.StripeClient:
    """The app's StripeClient, built on first use and cached in app.extensions."""
    app = current_app._get_current_object()
    cached = app.extensions.get(_EXTENSION)
    if cached is None:
        cached = app.extensions[_EXTENSION] = _build_client(app.config)
    return cached


class Pace:
    """Stripe's rate limits, kept by every process together: before each request (the stripe
    package's own retries included) a place is taken in a one-second moving window of reads
    (GET) or writes (everything else), shared through Redis (this process's memory without
    one); when the window is full the caller waits until it has room. Stripe's 429s are then
    the exception (another client of the same account), and each is an unknown outcome to
    its caller, never a failure (see movements.engine)."""

    def __init__(self, reads_per_second: int, writes_per_second: int, storage_uri: str):
        from limits import RateLimitItemPerSecond
        from limits.storage import storage_from_string
        from limits.strategies import MovingWindowRateLimiter

        self.limits = {kind: RateLimitItemPerSecond(rate) for kind, rate in
                       (("read", reads_per_second), ("write", writes_per_second)) if rate > 0}
        self.window = MovingWindowRateLimiter(storage_from_string(storage_uri, key_prefix="marketplace-stripe"))
        self.waited = 0.0  # seconds spent waiting, for benchmarks

    def take(self, method: str) -> None:
        kind = "read" if method.upper() in ("GET", "HEAD") else "write"
        limit = self.limits.get(kind)
        if limit is None:
            return
        try:
            while not self.window.hit(limit, "stripe", kind):
                reset = self.window.get_window_stats(limit, "stripe", kind).reset_time
                pause = min(max(reset - time.time(), 0.002), 1.0)
                self.waited += pause
                time.sleep(pause)
        except Exception as error:  # noqa: BLE001 - the window's storage (Redis) is down
            # Sent unpaced rather than not at all: Stripe's own 429 is then the limit, and
            # every caller treats it as an unknown outcome.
            log.warning("stripe pace unavailable (%s): request sent unpaced", type(error).__name__)


class _PacedClient(stripe.RequestsClient):
    def __init__(self, pace: Pace, **kwargs):
        super().__init__(**kwargs)
        self._pace = pace

    def request(self, method, url, headers, post_data=None):
        self._pace.take(method)
        return super().request(method, url, headers, post_data)


def _build_client(config) -> stripe.StripeClient:
    base = config.get("STRIPE_API_BASE")
    timeout = config.get("STRIPE_TIMEOUT_SECONDS", 30)
    reads, writes = config.get("STRIPE_READS_PER_SECOND", 0), config.get("STRIPE_WRITES_PER_SECOND", 0)
    http_client = (_PacedClient(Pace(reads, writes, config.get("REDIS_URL") or "memory://"), timeout=timeout)
                   if reads or writes else stripe.RequestsClient(timeout=timeout))
    kwargs: dict[str, Any] = {
        "max_network_retries": config.get("STRIPE_MAX_NETWORK_RETRIES", 2),
        "http_client": http_client,
    }
    if base:
        base = base.rstrip("/")
        kwargs["base_addresses"] = {"api": base, "connect": base, "files": base}
    return stripe.StripeClient(api_key=config["STRIPE_SECRET_KEY"], **kwargs)


def translate_error(error: stripe.StripeError, client_params: Iterable[str] = ()) -> AppError:
    """The AppError a Stripe error becomes; `client_params` are params the API client chose."""
    request_id = getattr(error, "request_id", None)
    details = {"stripe_request_id": request_id} if request_id else {}
    if error.http_status == 409:
        # Another request with this key is still running (`idempotency_key_in_use`; the
        # stripe package raises a plain APIError for any 409): its outcome is unknown.
        return StripeInFlight(details=details, headers={"Retry-After": "2"})
    if isinstance(error, stripe.CardError):
        decline = (getattr(error.error, "decline_code", None) if error.error else None)
        return PaymentDeclined(details={**details, "decline_code": decline or "generic_decline"})
    if isinstance(error, stripe.RateLimitError):
        retry_after = (error.headers or {}).get("Retry-After") or "2"
        return RateLimited(details=details, headers={"Retry-After": str(retry_after)})
    if isinstance(error, stripe.InvalidRequestError) and (error.code or "").endswith("_unexpected_state"):
        return StripeStateConflict(details={**details, "stripe_code": error.code})
    if isinstance(error, stripe.IdempotencyError):
        return StripeIdempotencyConflict(details=details)
    if isinstance(error, stripe.InvalidRequestError):
        param = getattr(error, "param", None)
        if param and param.split("[")[0] in set(client_params):
            field = param.split("[")[0]
            return ValidationFailed(
                details={field: [f"Rejected by the payment provider ({error.code or 'invalid'})."]}
            )
        failure = StripeFailure(details={**details, "stripe_code": error.code or "invalid_request"})
        failure.refused_parameters = bool(param) or (error.code or "").startswith("parameter_")
        return failure
    if isinstance(error, stripe.APIConnectionError):
        return ServiceUnavailable(
            "The payment provider could not be reached.", code="stripe_unavailable",
            details=details, headers={"Retry-After": "5"},
        )
    if isinstance(error, stripe.APIError) and (error.http_status or 500) >= 500:
        return ServiceUnavailable(
            "The payment provider is unavailable.", code="stripe_unavailable",
            details=details, headers={"Retry-After": "5"},
        )
    # Authentication, permission, idempotency and anything new: our side is misconfigured.
    return StripeFailure(details=details)


def _stripe_call(client_params: Iterable[str] = ()) -> Callable:
    """Run a gateway function, turning any Stripe error into an AppError."""

    def decorator(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except stripe.StripeError as error:
                log.warning(
                    "stripe call %s failed: %s status=%s code=%s request_id=%s",
                    fn.__name__, type(error).__name__, error.http_status, error.code,
                    error.request_id,
                )
                raise translate_error(error, client_params) from None

        return wrapper

    return decorator


def to_dict(obj: Any) -> dict:
    """A plain, recursive dict of a Stripe object (what services and jobs store or compare)."""
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


@_stripe_call(client_params=("country", "email"))
def create_express_account(vendor_id: str, country: str, email: str, idempotency_key: str) -> dict:
    """Create an Express connected account with manual payouts for a vendor."""
    params = {
        "type": "express",
        "country": country,
        "email": email,
        "capabilities": {"card_payments": {"requested": True}, "transfers": {"requested": True}},
        "settings": {"payouts": {"schedule": {"interval": "manual"}}},
        "metadata": {"vendor_id": vendor_id},
    }
    account = client().v1.accounts.create(params, {"idempotency_key": idempotency_key})
    return to_dict(account)


@_stripe_call()
def retrieve_account(account_id: str) -> dict:
    """The connected account as Stripe sees it now."""
    return to_dict(client().v1.accounts.retrieve(account_id))


@_stripe_call()
def create_account_link(account_id: str, refresh_url: str, return_url: str) -> dict:
    """A one-time onboarding link (`{url, expires_at}` among others)."""
    params = {
        "account": account_id,
        "refresh_url": refresh_url,
        "return_url": return_url,
        "type": "account_onboarding",
    }
    return to_dict(client().v1.account_links.create(params))


@_stripe_call()
def create_login_link(account_id: str) -> dict:
    """A single-use Express Dashboard login link (`{url, created}`); LoginLinkRefused when
    Stripe refuses it for the account's state."""
    try:
        return to_dict(client().v1.accounts.login_links.create(account_id))
    except stripe.InvalidRequestError as error:
        if error.http_status != 400 or error.param:
            raise
        details = {"stripe_request_id": error.request_id} if error.request_id else {}
        raise LoginLinkRefused(details=details) from None


@_stripe_call()
def retrieve_payment_intent(payment_intent_id: str, expand: list[str] | None = None) -> dict:
    """The PaymentIntent as Stripe sees it now (with `expand` paths when given)."""
    params = {"expand": expand} if expand else {}
    return to_dict(client().v1.payment_intents.retrieve(payment_intent_id, params))


def cancel_payment_intent(payment_intent_id: str, idempotency_key: str) -> dict:
    """Cancel a PaymentIntent; one already canceled is fine, one already paid is a 409."""
    current = retrieve_payment_intent(payment_intent_id)
    if current.get("status") == "canceled":
        return current
    if current.get("status") not in CANCELABLE_STATUSES:
        raise Conflict("The payment can no longer be canceled.", code="payment_not_cancelable")
    try:
        return _cancel_payment_intent(payment_intent_id, idempotency_key)
    except StripeStateConflict:  # confirmed (or canceled) since it was read
        now = retrieve_payment_intent(payment_intent_id)
        if now.get("status") == "canceled":
            return now
        raise Conflict("The payment can no longer be canceled.", code="payment_not_cancelable") from None


@_stripe_call()
def _cancel_payment_intent(payment_intent_id: str, idempotency_key: str) -> dict:
    intent = client().v1.payment_intents.cancel(
        payment_intent_id, {}, {"idempotency_key": idempotency_key}
    )
    return to_dict(intent)


def verify_webhook(raw_body: bytes, header: str | None, secrets: Iterable[str]) -> dict:
    """The event of a signed delivery, checked against each secret in turn (300 s tolerance).

    `WebhookSignature.verify_header` is the check `Webhook.construct_event` makes; parsing
    the JSON ourselves skips building a StripeObject (400 us against 27 us per event).
    """
    if not header:
        raise InvalidWebhook("The Stripe-Signature header is missing.")
    try:
        payload = raw_body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidWebhook("The webhook body is not UTF-8.", code="invalid_payload") from None
    if not any(_signed_by(payload, header, secret) for secret in secrets):
        raise InvalidWebhook("No signature matches, or the timestamp is outside the tolerance.")
    if _signed_in_the_future(header):
        raise InvalidWebhook("The signature's timestamp is ahead of this server's clock by more than the tolerance.")
    try:
        event = input_guard.loads(payload)
    except ValueError:
        event = None
    if not isinstance(event, dict) or event.get("object") != "event":
        raise InvalidWebhook("The webhook body is not a Stripe event.", code="invalid_payload")
    return event


def _signed_in_the_future(header: str) -> bool:
    """Stripe's check refuses old timestamps only; one further ahead than the tolerance was
    not made by Stripe now (a clock this far off is worth refusing too)."""
    stamps = [item.partition("=")[2] for item in header.split(",") if item.strip().startswith("t=")]
    try:
        signed_at = int(stamps[0])
    except (IndexError, ValueError):
        return True
    return signed_at > time.time() + WEBHOOK_TOLERANCE


def _signed_by(payload: str, header: str, secret: str) -> bool:
    try:
        return stripe.WebhookSignature.verify_header(payload, header, secret, WEBHOOK_TOLERANCE)
    except stripe.SignatureVerificationError:
        return False


def list_events(created_gte: int, account: str | None = None) -> Iterator[dict]:
    """Every event created at or after `created_gte` (unix), the platform's or `account`'s."""
    options = {"stripe_account": account} if account else {}
    try:
        page = client().v1.events.list({"created": {"gte": created_gte}, "limit": 100}, options)
        for event in page.auto_paging_iter():
            yield to_dict(event)
    except stripe.StripeError as error:  # raised while paging, outside any decorator's reach
        log.warning("stripe events.list failed: %s code=%s", type(error).__name__, error.code)
        raise translate_error(error) from None


def iter_balance_transactions(account: str | None, created_gte: int, created_lt: int) -> Iterator[dict]:
    """Every balance transaction of the platform (None) or `account` created in [gte, lt), newest first.

    Pages of 100 are fetched as the caller consumes them: nothing holds the whole window.
    """
    params = {"created": {"gte": created_gte, "lt": created_lt}, "limit": 100}
    try:
        page = client().v1.balance_transactions.list(params, _opts(account=account))
        for bt in page.auto_paging_iter():
            yield to_dict(bt)
    except stripe.StripeError as error:  # raised while paging, outside any decorator's reach
        log.warning("stripe balance_transactions.list failed: %s code=%s", type(error).__name__, error.code)
        raise translate_error(error) from None


@_stripe_call()
def balance_transactions_of(source_id: str, account: str | None = None) -> list[dict]:
    """The balance transactions a Stripe object made on the platform (None) or `account`."""
    page = client().v1.balance_transactions.list({"source": source_id, "limit": 100}, _opts(account=account))
    return [to_dict(bt) for bt in page.auto_paging_iter()]


@_stripe_call()
def retrieve_balance_transaction(bt_id: str, account: str | None = None) -> dict | None:
    """One balance transaction of the platform (None) or `account`; None when it has no such one."""
    try:
        return to_dict(client().v1.balance_transactions.retrieve(bt_id, {}, _opts(account=account)))
    except stripe.InvalidRequestError as error:
        if error.http_status == 404:
            return None
        raise


def _opts(idempotency_key: str | None = None, account: str | None = None) -> dict:
    options: dict[str, str] = {}
    if idempotency_key:
        options["idempotency_key"] = idempotency_key
    if account:
        options["stripe_account"] = account
    return options


@_stripe_call()
def create_payment_intent(params: dict, idempotency_key: str) -> dict:
    """Create a PaymentIntent (one per order: the key is derived from the order id)."""
    return to_dict(client().v1.payment_intents.create(params, _opts(idempotency_key)))


@_stripe_call(client_params=("payment_method",))
def confirm_payment_intent(payment_intent_id: str, payment_method: str, idempotency_key: str,
                           expand: list[str] | None = None, setup_future_usage: str | None = None) -> dict:
    """Confirm a PaymentIntent with a payment method (saved on its Customer for later when
    `setup_future_usage` is given); a decline raises PaymentDeclined (402)."""
    params: dict[str, Any] = {"payment_method": payment_method}
    if setup_future_usage:
        params["setup_future_usage"] = setup_future_usage
    if expand:
        params["expand"] = expand
    intent = client().v1.payment_intents.confirm(payment_intent_id, params, _opts(idempotency_key))
    return to_dict(intent)


@_stripe_call()
def retrieve_charge(charge_id: str, account: str | None = None, expand: list[str] | None = None) -> dict:
    """A charge (or a connected account's `py_` payment when `account` is given)."""
    params = {"expand": expand} if expand else {}
    return to_dict(client().v1.charges.retrieve(charge_id, params, _opts(account=account)))


@_stripe_call()
def create_transfer(params: dict, idempotency_key: str) -> dict:
    """Create a transfer to a connected account (key derived from the local row)."""
    return to_dict(client().v1.transfers.create(params, _opts(idempotency_key)))


@_stripe_call()
def create_transfer_reversal(transfer_id: str, params: dict, idempotency_key: str) -> dict:
    """Reverse part of a transfer (key derived from the local row)."""
    reversal = client().v1.transfers.reversals.create(transfer_id, params, _opts(idempotency_key))
    return to_dict(reversal)


@_stripe_call()
def create_refund(params: dict, idempotency_key: str) -> dict:
    """Refund (part of) a charge (key derived from the local refund id)."""
    return to_dict(client().v1.refunds.create(params, _opts(idempotency_key)))


@_stripe_call()
def retrieve_refund(refund_id: str, account: str | None = None, expand: list[str] | None = None) -> dict:
    """A refund (or a connected account's `pyr_` payment refund when `account` is given)."""
    params = {"expand": expand} if expand else {}
    return to_dict(client().v1.refunds.retrieve(refund_id, params, _opts(account=account)))


@_stripe_call()
def list_application_fee_refunds(fee_id: str) -> list[dict]:
    """Every refund of an application fee, with its balance transaction."""
    page = client().v1.application_fees.refunds.list(
        fee_id, {"limit": 100, "expand": ["data.balance_transaction"]}
    )
    return [to_dict(item) for item in page.auto_paging_iter()]


@_stripe_call()
def retrieve_dispute(dispute_id: str) -> dict:
    """A dispute with its balance transactions."""
    return to_dict(client().v1.disputes.retrieve(dispute_id))


@_stripe_call()
def retrieve_transfer(transfer_id: str, expand: list[str] | None = None) -> dict:
    """A transfer as Stripe sees it now."""
    params = {"expand": expand} if expand else {}
    return to_dict(client().v1.transfers.retrieve(transfer_id, params))


@_stripe_call()
def list_transfers(transfer_group: str) -> list[dict]:
    """Every transfer of a transfer group, with its balance transaction (to find one made
    under an earlier attempt whose answer was lost)."""
    page = client().v1.transfers.list({"transfer_group": transfer_group, "limit": 100,
                                       "expand": ["data.balance_transaction"]})
    return [to_dict(item) for item in page.auto_paging_iter()]


@_stripe_call()
def list_transfer_reversals(transfer_id: str) -> list[dict]:
    """Every reversal of a transfer, with its balance transaction."""
    page = client().v1.transfers.reversals.list(
        transfer_id, {"limit": 100, "expand": ["data.balance_transaction"]})
    return [to_dict(item) for item in page.auto_paging_iter()]


@_stripe_call()
def list_payouts(account: str, created_gte: int) -> list[dict]:
    """The connected account's payouts created at or after `created_gte` (unix)."""
    page = client().v1.payouts.list({"created": {"gte": created_gte}, "limit": 100,
                                     "expand": ["data.balance_transaction"]}, _opts(account=account))
    return [to_dict(item) for item in page.auto_paging_iter()]


@_stripe_call()
def list_refunds(charge_id: str) -> list[dict]:
    """Every refund of a charge, with its balance transaction."""
    page = client().v1.refunds.list({"charge": charge_id, "limit": 100, "expand": ["data.balance_transaction"]})
    return [to_dict(item) for item in page.auto_paging_iter()]


@_stripe_call()
def create_payout(account: str, amount: int, currency: str, idempotency_key: str,
                  metadata: dict | None = None) -> dict:
    """A payout on a connected account (key `payout-<payout.id>`), with its balance transaction."""
    params = {"amount": amount, "currency": currency, "metadata": metadata or {},
              "expand": ["balance_transaction"]}
    return to_dict(client().v1.payouts.create(params, _opts(idempotency_key, account)))


@_stripe_call()
def retrieve_payout(payout_id: str, account: str | None = None) -> dict:
    """A payout as Stripe sees it now, with its (failure) balance transactions."""
    params = {"expand": ["balance_transaction", "failure_balance_transaction"]}
    return to_dict(client().v1.payouts.retrieve(payout_id, params, _opts(account=account)))


@_stripe_call()
def retrieve_balance(account: str | None = None) -> dict:
    """`{available: [{amount, currency}], pending: [...]}` of the platform or a connected account."""
    return to_dict(client().v1.balance.retrieve({}, _opts(account=account)))



@_stripe_call()
def list_webhook_endpoints() -> list[dict]:
    """The platform's webhook endpoints."""
    return [to_dict(item) for item in client().v1.webhook_endpoints.list({"limit": 100}).auto_paging_iter()]


@_stripe_call()
def create_webhook_endpoint(params: dict) -> dict:
    """A webhook endpoint; its answer is the only one that shows the signing secret."""
    return to_dict(client().v1.webhook_endpoints.create(params))


@_stripe_call()
def update_webhook_endpoint(endpoint_id: str, params: dict) -> dict:
    """Change a webhook endpoint (its url, events, disabled)."""
    return to_dict(client().v1.webhook_endpoints.update(endpoint_id, params))


@_stripe_call(client_params=("email",))
def create_customer(params: dict, idempotency_key: str) -> dict:
    """A Customer (one per shopper: the key is derived from the user id)."""
    return to_dict(client().v1.customers.create(params, _opts(idempotency_key)))


@_stripe_call()
def list_customers(email: str) -> list[dict]:
    """The Customers with this email (to find one whose creation's answer was lost)."""
    return [to_dict(item) for item in client().v1.customers.list({"email": email, "limit": 100}).auto_paging_iter()]


@_stripe_call(client_params=("email",))
def update_customer(customer_id: str, params: dict) -> dict:
    """Change a Customer (its email, its default payment method)."""
    return to_dict(client().v1.customers.update(customer_id, params))


@_stripe_call(client_params=("payment_method",))
def retrieve_payment_method(payment_method_id: str) -> dict:
    """A PaymentMethod (its card's brand, last4 and expiry; its customer)."""
    return to_dict(client().v1.payment_methods.retrieve(payment_method_id))


@_stripe_call(client_params=("payment_method",))
def attach_payment_method(payment_method_id: str, customer_id: str, idempotency_key: str) -> dict:
    """Attach a PaymentMethod to a Customer (Stripe answers with the attached one)."""
    return to_dict(client().v1.payment_methods.attach(
        payment_method_id, {"customer": customer_id}, _opts(idempotency_key)))


@_stripe_call()
def detach_payment_method(payment_method_id: str) -> dict:
    """Detach a PaymentMethod from its Customer (it cannot be used again)."""
    return to_dict(client().v1.payment_methods.detach(payment_method_id))


@_stripe_call()
def create_setup_intent(params: dict, idempotency_key: str) -> dict:
    """A SetupIntent saving a card for later (off-session) use."""
    return to_dict(client().v1.setup_intents.create(params, _opts(idempotency_key)))


@_stripe_call()
def update_payment_intent(payment_intent_id: str, params: dict) -> dict:
    """Change a PaymentIntent not yet confirmed (e.g. give it the shopper's Customer)."""
    return to_dict(client().v1.payment_intents.update(payment_intent_id, params))


@_stripe_call()
def create_checkout_session(params: dict, idempotency_key: str) -> dict:
    """A Stripe Checkout Session (key derived from the order and its session count)."""
    return to_dict(client().v1.checkout.sessions.create(params, _opts(idempotency_key)))


@_stripe_call()
def retrieve_checkout_session(session_id: str, expand: list[str] | None = None) -> dict:
    """A Checkout Session as Stripe sees it now (its status and PaymentIntent)."""
    params = {"expand": expand} if expand else {}
    return to_dict(client().v1.checkout.sessions.retrieve(session_id, params))


@_stripe_call()
def expire_checkout_session(session_id: str) -> dict:
    """Expire an open Checkout Session; Stripe refuses one no longer open (the caller reads
    its state again)."""
    return to_dict(client().v1.checkout.sessions.expire(session_id))


# Subscriptions ---------------------------------------------------------------------------

@_stripe_call()
def create_product(params: dict, idempotency_key: str) -> dict:
    """A Stripe Product for a vendor's recurring product (key from the local product)."""
    return to_dict(client().v1.products.create(params, _opts(idempotency_key)))


@_stripe_call()
def create_price(params: dict, idempotency_key: str) -> dict:
    """A recurring Price (key from the product and the terms it is made for)."""
    return to_dict(client().v1.prices.create(params, _opts(idempotency_key)))


@_stripe_call()
def create_subscription(params: dict, idempotency_key: str) -> dict:
    """A Subscription on the platform (key from the local subscription)."""
    return to_dict(client().v1.subscriptions.create(params, _opts(idempotency_key)))


@_stripe_call()
def retrieve_subscription(subscription_id: str, expand: list[str] | None = None) -> dict:
    """A Subscription as Stripe sees it now."""
    params = {"expand": expand} if expand else {}
    return to_dict(client().v1.subscriptions.retrieve(subscription_id, params))


@_stripe_call()
def update_subscription(subscription_id: str, params: dict) -> dict:
    """Change a Subscription (cancel at the period's end, or not)."""
    return to_dict(client().v1.subscriptions.update(subscription_id, params))


@_stripe_call()
def cancel_subscription(subscription_id: str) -> dict:
    """End a Subscription now (Stripe refuses one already canceled)."""
    return to_dict(client().v1.subscriptions.cancel(subscription_id))


@_stripe_call()
def retrieve_invoice(invoice_id: str, expand: list[str] | None = None) -> dict:
    """An Invoice as Stripe sees it now (`payments` expanded: the PaymentIntent that paid it)."""
    params = {"expand": expand} if expand else {}
    return to_dict(client().v1.invoices.retrieve(invoice_id, params))


@_stripe_call()
def update_invoice(invoice_id: str, params: dict, idempotency_key: str) -> dict:
    """Change a draft Invoice (its application fee and transfer_data; key from the invoice)."""
    return to_dict(client().v1.invoices.update(invoice_id, params, _opts(idempotency_key)))


@_stripe_call()
def list_subscriptions(customer_id: str) -> list[dict]:
    """Every Subscription of a Customer, ended ones too (to find one whose answer was lost)."""
    return [to_dict(item) for item in client().v1.subscriptions.list(
        {"customer": customer_id, "status": "all", "limit": 100}).auto_paging_iter()]


@_stripe_call()
def list_draft_invoices(subscription_id: str) -> list[dict]:
    """A Subscription's draft invoices (a renewal's, for the hour before it is finalized)."""
    return [to_dict(item) for item in client().v1.invoices.list(
        {"subscription": subscription_id, "status": "draft", "limit": 100}).auto_paging_iter()]


@_stripe_call()
def list_open_invoices(customer_id: str) -> list[dict]:
    """A Customer's open invoices (to collect again what a cancel stopped)."""
    return [to_dict(item) for item in client().v1.invoices.list(
        {"customer": customer_id, "status": "open", "limit": 100}).auto_paging_iter()]
