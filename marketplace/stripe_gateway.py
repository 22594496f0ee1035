"""The only module that talks to Stripe: one StripeClient per app, small calls, one error map.

Every call that creates something takes an idempotency key derived from a local id, so a
retry after a crash or a timeout can never create a second object. Stripe errors become
AppErrors here and nowhere else; messages never carry secrets or raw Stripe payloads.
"""
from __future__ import annotations

import functools
import logging
from typing import Any, Callable, Iterable

import stripe
from flask import current_app

from marketplace.errors import AppError, Conflict, ServiceUnavailable, ValidationFailed

log = logging.getLogger(__name__)

_EXTENSION = "stripe_client"
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


def client() -> stripe.StripeClient:
    """The app's StripeClient, built on first use and cached in app.extensions."""
    app = current_app._get_current_object()
    cached = app.extensions.get(_EXTENSION)
    if cached is None:
        cached = app.extensions[_EXTENSION] = _build_client(app.config)
    return cached


def _build_client(config) -> stripe.StripeClient:
    base = config.get("STRIPE_API_BASE")
    kwargs: dict[str, Any] = {
        "max_network_retries": config.get("STRIPE_MAX_NETWORK_RETRIES", 2),
        "http_client": stripe.RequestsClient(timeout=config.get("STRIPE_TIMEOUT_SECONDS", 30)),
    }
    if base:
        base = base.rstrip("/")
        kwargs["base_addresses"] = {"api": base, "connect": base, "files": base}
    return stripe.StripeClient(api_key=config["STRIPE_SECRET_KEY"], **kwargs)


def translate_error(error: stripe.StripeError, client_params: Iterable[str] = ()) -> AppError:
    """The AppError a Stripe error becomes; `client_params` are params the API client chose."""
    request_id = getattr(error, "request_id", None)
    details = {"stripe_request_id": request_id} if request_id else {}
    if isinstance(error, stripe.CardError):
        decline = (getattr(error.error, "decline_code", None) if error.error else None)
        return PaymentDeclined(details={**details, "decline_code": decline or "generic_decline"})
    if isinstance(error, stripe.RateLimitError):
        return RateLimited(details=details, headers={"Retry-After": "2"})
    if isinstance(error, stripe.InvalidRequestError):
        param = getattr(error, "param", None)
        if param and param.split("[")[0] in set(client_params):
            field = param.split("[")[0]
            return ValidationFailed(
                details={field: [f"Rejected by the payment provider ({error.code or 'invalid'})."]}
            )
        return StripeFailure(details={**details, "stripe_code": error.code or "invalid_request"})
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
def retrieve_payment_intent(payment_intent_id: str) -> dict:
    """The PaymentIntent as Stripe sees it now."""
    return to_dict(client().v1.payment_intents.retrieve(payment_intent_id))


def cancel_payment_intent(payment_intent_id: str, idempotency_key: str) -> dict:
    """Cancel a PaymentIntent; one already canceled is fine, one already paid is a 409."""
    current = retrieve_payment_intent(payment_intent_id)
    if current.get("status") == "canceled":
        return current
    if current.get("status") not in CANCELABLE_STATUSES:
        raise Conflict("The payment can no longer be canceled.", code="payment_not_cancelable")
    return _cancel_payment_intent(payment_intent_id, idempotency_key)


@_stripe_call()
def _cancel_payment_intent(payment_intent_id: str, idempotency_key: str) -> dict:
    intent = client().v1.payment_intents.cancel(
        payment_intent_id, {}, {"idempotency_key": idempotency_key}
    )
    return to_dict(intent)
