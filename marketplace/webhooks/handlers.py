"""Event type -> handler, each an imported service function of the domain that owns it (a
wrong name fails at import, never silently at run time).

A handler takes the event dict and returns nothing when the event was applied; it raises
`Ignored(reason)` when there is nothing to do. Handlers never trust delivery order: the
domain services they call move state forward only, or re-fetch the object from Stripe.
"""
from __future__ import annotations

import inspect
from typing import Callable

from marketplace.movements import engine
from marketplace.payments import adoption, disputes, refunds, transfers
from marketplace.payments import service as payments
from marketplace.payouts import service as payouts
from marketplace.vendors import service as vendors

Handler = Callable[[dict], None]


class Ignored(Exception):
    """Nothing to do for this event; the message says why."""


def on_object(fn: Callable) -> Handler:
    """A handler passing `data.object` (and `account=` when `fn` takes it) to a service function."""
    takes_account = "account" in inspect.signature(fn).parameters

    def handler(event: dict) -> None:
        if takes_account:
            fn(event["data"]["object"], account=event.get("account"))
        else:
            fn(event["data"]["object"])

    handler.__name__ = handler.__qualname__ = f"on_{fn.__name__}"
    handler.__wrapped__ = fn
    return handler


def account_updated(event: dict) -> None:
    """Bring the vendor in line with its connected account (re-fetched from Stripe)."""
    account = dict(event["data"]["object"])
    # A Connect event names its account twice; the envelope's `account` is authoritative.
    account["id"] = event.get("account") or account.get("id")
    if vendors.apply_account_update(account) is None:
        raise Ignored(f"no vendor has the account {account['id']}")


HANDLERS: dict[str, Handler] = {
    "payment_intent.succeeded": on_object(payments.handle_payment_intent_succeeded),
    "payment_intent.payment_failed": on_object(payments.handle_payment_intent_failed),
    "payment_intent.canceled": on_object(payments.handle_payment_intent_canceled),
    "payment_intent.requires_action": on_object(payments.handle_requires_action),
    "charge.updated": on_object(payments.handle_charge_updated),
    "charge.refunded": on_object(adoption.handle_charge_refunded),
    "refund.updated": on_object(refunds.handle_refund_updated),
    "refund.failed": on_object(refunds.handle_refund_failed),
    "charge.dispute.created": on_object(disputes.handle_dispute_created),
    "charge.dispute.funds_withdrawn": on_object(disputes.handle_dispute_funds_withdrawn),
    "charge.dispute.funds_reinstated": on_object(disputes.handle_dispute_funds_reinstated),
    "charge.dispute.closed": on_object(disputes.handle_dispute_closed),
    "charge.dispute.updated": on_object(disputes.handle_dispute_updated),
    "transfer.created": on_object(transfers.handle_transfer_created),
    "transfer.reversed": on_object(transfers.handle_transfer_reversed),
    "application_fee.refunded": on_object(transfers.handle_application_fee_refunded),
    "account.updated": account_updated,
    "payout.paid": on_object(payouts.handle_payout_paid),
    "payout.failed": on_object(payouts.handle_payout_failed),
    "payout.canceled": on_object(payouts.handle_payout_canceled),
    "balance.available": on_object(engine.handle_balance_available),
}


def dispatch(event: dict) -> None:
    """Run the handler of the event's type; unknown types are Ignored."""
    handler = HANDLERS.get(event.get("type", ""))
    if handler is None:
        raise Ignored(f"no handler for event type {event.get('type')!r}")
    handler(event)
