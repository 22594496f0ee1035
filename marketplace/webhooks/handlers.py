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
from marketplace.payments import adoption, checkout, disputes, refunds, transfers
from marketplace.payments import service as payments
from marketplace.payouts import service as payouts
from marketplace.stripe_gateway import StripeFailure
from marketplace.subscriptions import service as subscriptions
from marketplace.vendors import service as vendors
from marketplace.wallets import service as wallets

Handler = Callable[[dict], None]


class Ignored(Exception):
    """Nothing to do for this event; the message says why."""


def on_object(fn: Callable, none_is_ignored: bool = False) -> Handler:
    """A handler passing `data.object` (and `account=` when `fn` takes it) to a service function.

    With `none_is_ignored`, the function returns the local record it brought in line, and
    None when there is none to apply the event to (a PaymentIntent, dispute or payout that is
    not this platform's, or not in the state the event announces): the event is then stored
    as ignored with that reason, not as processed."""
    takes_account = "account" in inspect.signature(fn).parameters

    def handler(event: dict) -> None:
        obj = event["data"]["object"]
        result = fn(obj, account=event.get("account")) if takes_account else fn(obj)
        if none_is_ignored and result is None:
            raise Ignored(f"nothing here to apply it to: no local record takes {obj.get('object', 'object')} "
                          f"{obj.get('id')!r} in its current state")

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
    "payment_intent.succeeded": on_object(payments.handle_payment_intent_succeeded, none_is_ignored=True),
    "payment_intent.payment_failed": on_object(payments.handle_payment_intent_failed, none_is_ignored=True),
    "payment_intent.canceled": on_object(payments.handle_payment_intent_canceled, none_is_ignored=True),
    "payment_intent.requires_action": on_object(payments.handle_requires_action, none_is_ignored=True),
    "checkout.session.completed": on_object(checkout.handle_session_completed, none_is_ignored=True),
    "checkout.session.async_payment_succeeded": on_object(checkout.handle_session_completed, none_is_ignored=True),
    "checkout.session.async_payment_failed": on_object(checkout.handle_async_payment_failed, none_is_ignored=True),
    "checkout.session.expired": on_object(checkout.handle_session_expired, none_is_ignored=True),
    "payment_method.attached": on_object(wallets.handle_attached, none_is_ignored=True),
    "payment_method.detached": on_object(wallets.handle_detached, none_is_ignored=True),
    "charge.updated": on_object(payments.handle_charge_updated, none_is_ignored=True),
    "charge.refunded": on_object(adoption.handle_charge_refunded),
    "refund.updated": on_object(refunds.handle_refund_updated),
    "refund.failed": on_object(refunds.handle_refund_failed),
    "charge.dispute.created": on_object(disputes.handle_dispute_created, none_is_ignored=True),
    "charge.dispute.funds_withdrawn": on_object(disputes.handle_dispute_funds_withdrawn, none_is_ignored=True),
    "charge.dispute.funds_reinstated": on_object(disputes.handle_dispute_funds_reinstated, none_is_ignored=True),
    "charge.dispute.closed": on_object(disputes.handle_dispute_closed, none_is_ignored=True),
    "charge.dispute.updated": on_object(disputes.handle_dispute_updated, none_is_ignored=True),
    "transfer.created": on_object(transfers.handle_transfer_created),
    "transfer.reversed": on_object(transfers.handle_transfer_reversed),
    "application_fee.refunded": on_object(transfers.handle_application_fee_refunded),
    "account.updated": account_updated,
    "payout.paid": on_object(payouts.handle_payout_paid, none_is_ignored=True),
    "payout.failed": on_object(payouts.handle_payout_failed, none_is_ignored=True),
    "payout.canceled": on_object(payouts.handle_payout_canceled, none_is_ignored=True),
    "balance.available": on_object(engine.handle_balance_available),
    "invoice.created": on_object(subscriptions.handle_invoice_created, none_is_ignored=True),
    "invoice.paid": on_object(subscriptions.handle_invoice_paid, none_is_ignored=True),
    "invoice.payment_failed": on_object(subscriptions.handle_subscription_changed, none_is_ignored=True),
    "invoice.payment_action_required": on_object(subscriptions.handle_subscription_changed, none_is_ignored=True),
    "customer.subscription.created": on_object(subscriptions.handle_subscription_changed, none_is_ignored=True),
    "customer.subscription.updated": on_object(subscriptions.handle_subscription_changed, none_is_ignored=True),
    "customer.subscription.deleted": on_object(subscriptions.handle_subscription_changed, none_is_ignored=True),
}


def dispatch(event: dict) -> None:
    """Run the handler of the event's type; unknown types are Ignored, and so are events
    about an object Stripe says does not exist (retrying would only ask again)."""
    handler = HANDLERS.get(event.get("type", ""))
    if handler is None:
        raise Ignored(f"no handler for event type {event.get('type')!r}")
    try:
        handler(event)
    except StripeFailure as failure:
        if failure.details.get("stripe_code") != "resource_missing":
            raise
        obj = (event.get("data") or {}).get("object") or {}
        raise Ignored(f"Stripe has no {obj.get('object', 'object')} {obj.get('id')!r}"
                      f"{' on ' + event['account'] if event.get('account') else ''}") from None
