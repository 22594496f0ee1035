"""PaymentIntent events other than success: declined, authentication required, canceled.

Each re-fetches the PaymentIntent, is safe to call twice and in any order, and never moves
a paid order back. A decline makes the order `payment_failed`, which stays payable.
"""
from __future__ import annotations

from marketplace import stripe_gateway
from marketplace.database import utcnow
from marketplace.orders import service as orders_service
from marketplace.payments.locking import locked_payment
from marketplace.payments.models import Payment
from marketplace.transaction import atomic

PAYABLE = ("pending_payment", "payment_failed")


def handle_payment_intent_failed(payment_intent: dict) -> Payment | None:
    """A declined attempt: the order becomes payment_failed (still payable); paid orders are untouched."""
    intent = stripe_gateway.retrieve_payment_intent(payment_intent["id"])
    if intent["status"] not in ("requires_payment_method", "canceled"):
        return None
    return _declined(intent)


@atomic
def _declined(intent: dict) -> Payment | None:
    payment, order = locked_payment(intent["id"])
    if payment is None:
        return None
    error = intent.get("last_payment_error") or {}
    if payment.status != "succeeded":
        payment.status = intent["status"]
        payment.decline_code = error.get("decline_code") or error.get("code")
    if order.status == "pending_payment" and intent["status"] == "requires_payment_method":
        order.status = "payment_failed"
    return payment


def handle_requires_action(payment_intent: dict) -> Payment | None:
    """The shopper must authenticate (3-D Secure): recorded, the order stays payable."""
    return _authentication_required(stripe_gateway.retrieve_payment_intent(payment_intent["id"]))


@atomic
def _authentication_required(intent: dict) -> Payment | None:
    payment, order = locked_payment(intent["id"])
    if payment is None:
        return None
    if payment.status != "succeeded" and intent["status"] == "requires_action":
        payment.status = "requires_action"
    return payment


def handle_payment_intent_canceled(payment_intent: dict) -> Payment | None:
    """A canceled PaymentIntent cancels its unpaid order and releases the stock, once."""
    intent = stripe_gateway.retrieve_payment_intent(payment_intent["id"])
    if intent["status"] != "canceled":
        return None
    return _canceled(intent)


@atomic
def _canceled(intent: dict) -> Payment | None:
    payment, order = locked_payment(intent["id"])
    if payment is None:
        return None
    payment.status = "canceled"
    if order.status in PAYABLE:
        order.status = "canceled"
        order.canceled_at = utcnow()
        for split in order.splits:
            split.status = "canceled"
    if order.status == "canceled":
        orders_service.release_stock(order, commit=False)
    return payment
