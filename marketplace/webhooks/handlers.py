"""Event type -> plain handler function, each calling the service of the domain that owns it.

A handler takes the event dict and returns nothing when the event was applied; it raises
`Ignored(reason)` when there is nothing to do. Handlers never trust delivery order: the
domain services they call move state forward only, or re-fetch the object from Stripe.
"""
from __future__ import annotations

import functools
import importlib
import inspect
from typing import Any, Callable

Handler = Callable[[dict], None]

PAYMENTS = "marketplace.payments.service"
PAYOUTS = "marketplace.payouts.service"


class Ignored(Exception):
    """Nothing to do for this event; the message says why."""


def _resolve(module_name: str, function_name: str) -> Callable | None:
    """The service function, or None while the module or function does not exist yet."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            return None
        raise
    return getattr(module, function_name, None)


@functools.lru_cache(maxsize=None)
def _takes_account(fn: Callable) -> bool:
    return "account" in inspect.signature(fn).parameters


def call_service(module_name: str, function_name: str) -> Handler:
    """A handler passing `data.object` (and `account=` when the function takes it) to a service."""

    def handler(event: dict) -> None:
        fn = _resolve(module_name, function_name)
        if fn is None:
            raise Ignored(f"no handler yet: {module_name}.{function_name} does not exist")
        kwargs: dict[str, Any] = {}
        if _takes_account(fn):
            kwargs["account"] = event.get("account")
        fn(event["data"]["object"], **kwargs)

    handler.__name__ = f"call_{function_name}"
    return handler


def account_updated(event: dict) -> None:
    """Bring the vendor in line with its connected account (re-fetched from Stripe)."""
    from marketplace.vendors import service

    account = dict(event["data"]["object"])
    # A Connect event names its account twice; the envelope's `account` is authoritative.
    account["id"] = event.get("account") or account.get("id")
    if service.apply_account_update(account) is None:
        raise Ignored(f"no vendor has the account {account['id']}")


def _payments(name: str) -> Handler:
    return call_service(PAYMENTS, name)


HANDLERS: dict[str, Handler] = {
    "payment_intent.succeeded": _payments("handle_payment_intent_succeeded"),
    "payment_intent.payment_failed": _payments("handle_payment_intent_failed"),
    "payment_intent.canceled": _payments("handle_payment_intent_canceled"),
    "payment_intent.requires_action": _payments("handle_requires_action"),
    "charge.updated": _payments("handle_charge_updated"),
    "charge.refunded": _payments("handle_charge_refunded"),
    "refund.updated": _payments("handle_refund_updated"),
    "refund.failed": _payments("handle_refund_failed"),
    "charge.dispute.created": _payments("handle_dispute_created"),
    "charge.dispute.funds_withdrawn": _payments("handle_dispute_funds_withdrawn"),
    "charge.dispute.funds_reinstated": _payments("handle_dispute_funds_reinstated"),
    "charge.dispute.closed": _payments("handle_dispute_closed"),
    "charge.dispute.updated": _payments("handle_dispute_updated"),
    "transfer.created": _payments("handle_transfer_created"),
    "transfer.reversed": _payments("handle_transfer_reversed"),
    "application_fee.refunded": _payments("handle_application_fee_refunded"),
    "account.updated": account_updated,
    "payout.paid": call_service(PAYOUTS, "handle_payout_paid"),
    "payout.failed": call_service(PAYOUTS, "handle_payout_failed"),
    "payout.canceled": call_service(PAYOUTS, "handle_payout_canceled"),
    "balance.available": call_service("marketplace.movements.engine", "handle_balance_available"),
}


def dispatch(event: dict) -> None:
    """Run the handler of the event's type; unknown types are Ignored."""
    handler = HANDLERS.get(event.get("type", ""))
    if handler is None:
        raise Ignored(f"no handler for event type {event.get('type')!r}")
    handler(event)
