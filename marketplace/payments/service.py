"""Paying for orders: one PaymentIntent per order, confirmation, and the PaymentIntent events.

The `handle_*` functions are what the webhook jobs call (and what confirmation calls
synchronously). Each re-fetches the object from Stripe rather than trusting the payload,
is safe to call twice and in any order, and only moves state forward: a `paid` order never
goes back. A declined card leaves the order `payment_failed`, which is still payable: the
same PaymentIntent can be confirmed again with another payment method.

Capture is asynchronous (Stripe's default since API 2024-04-10): when a payment succeeds,
its charge's balance transaction, and on a destination charge its transfer and
application fee, may not exist yet. Success marks the payment and the order paid at once
and plans each split's transfer as a movement (transfers.plan_transfers); the charge's
balance transaction and application fee are booked when they exist, whoever sees them
first: confirmation, `payment_intent.succeeded`, the `charge.updated` that announces them,
or the worker's sweep of payments still unbooked (`book_unsettled`). Booking is keyed by
balance transaction, so it happens once whatever the order.

Refund and dispute handlers live in `refunds` and `disputes`; they are re-exported here so
the webhooks have one module to call.
"""
from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

from sqlalchemy import and_, or_, select, update

from marketplace import audit, fraud, idempotency, stripe_gateway, stripe_requests
from marketplace.auth.models import User
from marketplace.database import utcnow
from marketplace.errors import AppError, Conflict, NotFound
from marketplace.extensions import db
from marketplace.movements import engine
from marketplace.orders.models import Order
from marketplace.payments import ledger_entries as entries
from marketplace.ledger.accounts import APPLICATION_FEE
from marketplace.ledger.models import JournalEntry
from marketplace.movements.models import Movement
from marketplace.payments import checkout, movement_kinds, transfers
from marketplace.payments.intent_events import (
    handle_payment_intent_canceled,
    handle_payment_intent_failed,
    handle_requires_action,
)
from marketplace.payments.locking import lock_order, locked_payment, payment_for_intent
from marketplace.payments.models import Payment
from marketplace.transaction import atomic
from marketplace.vendors.models import Vendor
from marketplace.wallets import service as wallets
from marketplace.wallets.models import Customer
from marketplace.wallets.service import customer_of
from marketplace.webhooks import later

log = logging.getLogger(__name__)

PAYABLE = ("pending_payment", "payment_failed")
# Order states a succeeded payment moves forward to `paid` (never from a later state).
BEFORE_PAID = ("pending_payment", "processing", "payment_failed")
# Everything booking a succeeded payment needs, in the one read that sees it: the charge's
# balance transaction (its Stripe fee), on a destination charge the application fee's and the
# transfer Stripe made, with the vendor's side of it (the `py_` payment on the connected
# account and its balance transaction: what the transfer movement records). Four levels, the
# most Stripe expands.
SUCCESS_EXPAND = [
    "latest_charge.balance_transaction",
    "latest_charge.application_fee.balance_transaction",
    "latest_charge.transfer.balance_transaction",
    "latest_charge.transfer.destination_payment.balance_transaction",
]
# Card PaymentMethods confirmed by the server: no redirect-based payment method is offered,
# so confirmation needs no return_url (automatic payment methods are on by default since
# 2023-08-16, and payment_method_types is no longer accepted since 2026-09-30).
AUTOMATIC_PAYMENT_METHODS = {"enabled": True, "allow_redirects": "never"}
# A payment succeeded this long ago whose charge is still unbooked is fetched again.
UNSETTLED_AFTER = timedelta(minutes=2)


def payment_intent_key(order_id: str) -> str:
    """The Stripe idempotency key of the order's one PaymentIntent."""
    return f"payment-intent-{order_id}"


def create_payment_intent(user: User, order_id: str) -> tuple[Payment, bool]:
    """The order's PaymentIntent, made once whatever the retries; (payment, created now).

    An open Checkout Session of the order is expired at Stripe first: one way to pay at a time.
    The request's parameters are fixed before it is first sent (`stripe_requests`): a retry
    after a lost answer sends the same ones, though the shopper has a Customer or another
    email since, and Stripe answers with the PaymentIntent it made."""
    checkout.close_open(order_id)
    _freeze_intent(user, order_id)
    return _create_payment_intent(user, order_id)


@atomic
def _freeze_intent(user: User, order_id: str) -> None:
    order = _own_order(user, order_id, lock=True)
    if order.payment_summary is None and order.status in PAYABLE:
        stripe_requests.freeze(payment_intent_key(order.id),
                               lambda: _intent_params(order, user, customer_of(user.id)))


@atomic
def _create_payment_intent(user: User, order_id: str) -> tuple[Payment, bool]:
    order = _own_order(user, order_id, lock=True)
    existing = order.payment_summary
    if existing is not None and order.status != "canceled":
        return existing, idempotency.recovered("payment") == existing.id
    if order.status not in PAYABLE:
        raise Conflict("This order cannot be paid.", code="order_not_payable", details={"status": order.status})
    if checkout.open_session_of(order.id) is not None:  # opened since close_open looked
        raise Conflict("A hosted checkout was opened for this order meanwhile; try again.",
                       code="checkout_session_open", headers={"Retry-After": "1"})
    refuse_suspended_destination(order)
    key = payment_intent_key(order.id)
    params = stripe_requests.frozen(key)
    if params is None:  # forgotten meanwhile by a refused try: ask afresh
        raise Conflict("The order's payment was being set up meanwhile; try again.",
                       code="payment_intent_in_progress", headers={"Retry-After": "1"})
    # The order row stays locked over this one call, so concurrent callers wait and then
    # find the Payment; the idempotency key covers what a lock cannot (a crash, a retry).
    intent = stripe_requests.send(stripe_gateway.create_payment_intent, params, key)
    payment = Payment(
        order_id=order.id, shopper_id=order.shopper_id, payment_intent_id=intent["id"],
        client_secret=intent["client_secret"], charge_type=order.charge_type, amount=order.total,
        currency=order.currency, application_fee_amount=intent.get("application_fee_amount"),
        status=intent["status"], stripe_customer_id=intent.get("customer"),
    )
    db.session.add(payment)
    order.payment_intent_id = intent["id"]
    db.session.flush()
    idempotency.bind("payment", payment.id)
    audit.record("payment_intent.created", "payment", payment.id, amount=payment.amount, currency=payment.currency)
    return payment, True


def refuse_suspended_destination(order: Order) -> None:
    """A destination charge pays the vendor at once: not while the vendor is suspended (the
    shares of separate charges wait on the platform instead; see transfers)."""
    if order.charge_type != "destination":
        return
    vendor = db.session.get(Vendor, order.splits[0].vendor_id)
    if vendor.status == "suspended":
        raise Conflict("The vendor of this order is suspended; it cannot be paid now.", code="vendor_suspended")


def _own_order(user: User, order_id: str, lock: bool = False) -> Order:
    order = lock_order(order_id) if lock else db.session.get(Order, order_id)
    if order is None or order.shopper_id != user.id:
        raise NotFound("No such order.", code="order_not_found")
    return order


def _intent_params(order: Order, user: User, customer: Customer | None) -> dict:
    params = {
        "amount": order.total, "currency": order.currency,
        "automatic_payment_methods": AUTOMATIC_PAYMENT_METHODS,
        "metadata": {"order_id": order.id}, "receipt_email": user.email,
    }
    if customer is not None:  # its saved cards can pay, and a card used can be saved on it
        params["customer"] = customer.stripe_customer_id
    if order.charge_type == "destination":
        split = order.splits[0]
        vendor = db.session.get(Vendor, split.vendor_id)
        params["transfer_data"] = {"destination": vendor.stripe_account_id}
        params["application_fee_amount"] = split.platform_fee
    else:
        params["transfer_group"] = f"order_{order.id}"
    return params


def confirm(user: User, order_id: str, payment_method: str | None = None, save: bool = False) -> dict:
    """Confirm the order's PaymentIntent; success marks the order paid before answering.

    The payment method is a card saved on the shopper's Customer, the default one when none
    is named, or a one-off (test) payment method; `save` keeps the card used on the Customer
    for later (`setup_future_usage=off_session`: Stripe attaches it when the payment succeeds)."""
    fraud.check_failed_payments(user.id)
    payment_method, saved = wallets.payment_method_for(user, payment_method)
    payment, _ = create_payment_intent(user, order_id)
    if payment.status == "succeeded":
        return _result(payment, None)
    if saved or save:
        _give_customer(payment, wallets.ensure_customer(user))
    payment_id, intent_id, key = _confirmation(order_id, payment.id, payment_method, save)
    try:  # no transaction is open over the network call; Stripe's answer is booked as it is
        intent = stripe_gateway.confirm_payment_intent(
            intent_id, payment_method, key, expand=SUCCESS_EXPAND + ["payment_method"],
            setup_future_usage=wallets.SETUP_USAGE if save else None)
    except stripe_gateway.PaymentDeclined:
        fraud.record_failed_payment(user.id)
        _next_attempt(payment_id)
        handle_payment_intent_failed({"id": intent_id})
        raise
    except stripe_gateway.StripeFailure:
        # E.g. an earlier attempt whose answer was lost already succeeded: go by Stripe's state.
        intent = stripe_gateway.retrieve_payment_intent(intent_id, expand=SUCCESS_EXPAND)
        if intent["status"] == "canceled":  # a cancel raced this confirmation and won
            raise Conflict("This order cannot be paid.", code="order_not_payable",
                           details={"status": "canceled"}) from None
        if intent["status"] not in ("succeeded", "requires_action"):
            raise
    if intent["status"] != "succeeded":
        _next_attempt(payment_id)
    elif save and isinstance(intent.get("payment_method"), dict):
        wallets.record_attached(intent["payment_method"])  # also told by payment_method.attached
    return _after_confirm(db.session.get(Payment, payment_id), intent)


def _give_customer(payment: Payment, customer: Customer) -> None:
    """A PaymentIntent made before the shopper had a Customer is given it before a saved card
    pays it or a card is saved by it (Stripe needs both on the same Customer)."""
    if payment.stripe_customer_id == customer.stripe_customer_id:
        return
    stripe_gateway.update_payment_intent(payment.payment_intent_id, {"customer": customer.stripe_customer_id})
    db.session.execute(update(Payment).where(Payment.id == payment.id)
                       .values(stripe_customer_id=customer.stripe_customer_id))
    db.session.commit()


@atomic
def _confirmation(order_id: str, payment_id: str, payment_method: str, save: bool = False) -> tuple[str, str, str]:
    """The order may be paid now: (payment id, PaymentIntent id, this attempt's key)."""
    order = db.session.get(Order, order_id)
    if order.status not in PAYABLE:
        raise Conflict("This order cannot be paid.", code="order_not_payable", details={"status": order.status})
    refuse_suspended_destination(order)
    payment = db.session.get(Payment, payment_id)
    return payment.id, payment.payment_intent_id, confirm_key(payment, payment_method, save)


def confirm_key(payment: Payment, payment_method: str, save: bool = False) -> str:
    """Same attempt, card and choice to save it, same key: a retry after a timeout or a 5xx
    cannot confirm twice."""
    digest = hashlib.sha256(f"{payment_method}{'+save' if save else ''}".encode()).hexdigest()[:16]
    return f"confirm-{payment.id}-{payment.confirm_attempts}-{digest}"


@atomic
def _next_attempt(payment_id: str) -> None:
    """After a definite answer (declined, authentication needed) the next confirmation is a new attempt."""
    db.session.execute(
        update(Payment).where(Payment.id == payment_id).values(confirm_attempts=Payment.confirm_attempts + 1)
    )


def _after_confirm(payment: Payment, intent: dict) -> dict:
    """Apply Stripe's answer to the confirmation (read with SUCCESS_EXPAND): no second read."""
    if intent["status"] == "succeeded":
        apply_succeeded(intent)
    elif intent["status"] == "requires_action":
        handle_requires_action(intent)
    elif intent["status"] == "requires_payment_method":
        handle_payment_intent_failed(intent)
    db.session.refresh(payment)
    return _result(payment, intent.get("next_action"))


def _result(payment: Payment, next_action) -> dict:
    return {
        "status": payment.status, "next_action": next_action,
        "payment_intent_id": payment.payment_intent_id,
        "order_status": db.session.get(Order, payment.order_id).status,
    }


# A payment_intent.succeeded received while its payment is not succeeded here is looked at
# again this much later: the confirmation's answer, recorded meanwhile, spares the read.
CONFIRMATION_ANSWER_WAIT = timedelta(seconds=2)
# The states of a payment only our confirmation request moves on (not one waiting for the
# shopper's 3-D Secure, whose success only the event brings).
AWAITING_CONFIRMATION = ("requires_payment_method", "requires_confirmation")


def handle_payment_intent_succeeded(payment_intent: dict) -> Payment | None:
    """`payment_intent.succeeded`: mark the payment and the order paid, book whatever of the
    charge exists yet and plan the vendors' transfers (once).

    A payment already succeeded here (the confirmation's answer came first, as it usually
    does) is left as it is, with no call to Stripe: the event says nothing the answer did not,
    and what comes later (the charge settling) is announced by `charge.updated`."""
    payment = payment_for_intent(payment_intent["id"])
    session_id = checkout.session_for_intent(payment_intent) if payment is None else None
    db.session.rollback()
    if session_id is not None:  # a Checkout Session's, before its checkout.session.completed
        return checkout.handle_session_completed({"id": session_id})
    if payment is None or payment.status == "succeeded":  # not ours (no Stripe call for it), or applied
        return payment
    if payment.status in AWAITING_CONFIRMATION and later.fresh():
        # Stripe sent it while the confirmation was being answered: that answer books it.
        raise later.Later(CONFIRMATION_ANSWER_WAIT, "the confirmation's answer may book it first")
    return book_payment_intent(payment_intent["id"])


def book_payment_intent(intent_id: str) -> Payment | None:
    """Read the PaymentIntent from Stripe (SUCCESS_EXPAND) and apply it if it succeeded."""
    intent = stripe_gateway.retrieve_payment_intent(intent_id, expand=SUCCESS_EXPAND)
    if intent["status"] != "succeeded":
        log.info("payment intent %s is %s, not succeeded: ignored", intent["id"], intent["status"])
        return None
    return apply_succeeded(intent)


def apply_succeeded(intent: dict) -> Payment | None:
    """Record a succeeded PaymentIntent read from Stripe with SUCCESS_EXPAND (never a webhook's
    payload); the destination transfer Stripe made, when the charge shows it, is recorded by
    its movement from what this read brought."""
    payment_id, found = _succeeded(intent)
    if found:  # Stripe made the destination transfer: its movement records it now
        transfer = intent["latest_charge"]["transfer"]
        engine.wake(found, found=movement_kinds.transfer_shown(transfer) if isinstance(transfer, dict) else None)
    return db.session.get(Payment, payment_id) if payment_id else None


@atomic
def _succeeded(intent: dict) -> tuple[str | None, list[str]]:
    """(payment id, the destination transfer movements Stripe has made) once recorded."""
    charge = intent["latest_charge"]
    payment, order = locked_payment(intent["id"])
    if payment is None:
        return None, []
    if payment.status != "succeeded":
        audit.record("payment.succeeded", "payment", payment.id, amount=payment.amount, currency=payment.currency)
    _record_success(payment, order, charge)
    transfers.plan_transfers(order, charge["id"], payment.application_fee_amount)
    settled = order.charge_type == "destination" and charge.get("transfer")
    return payment.id, [m.id for m in engine.live(order_id=order.id, kind="transfer")] if settled else []


def handle_charge_updated(charge: dict) -> Payment | None:
    """`charge.updated`: a charge of ours settled (or changed); book what now exists.

    Stripe is asked only when there may be something to book: not for a payment booked in
    full already (its balance transaction and, on a destination charge, the transfer Stripe
    made), nor while the charge announces no balance transaction (not settled: a later
    `charge.updated` will, and `book_unsettled` is the net for one that never comes)."""
    intent_id = charge.get("payment_intent")
    if not intent_id or charge.get("status") != "succeeded":
        return None
    payment = payment_for_intent(intent_id)
    if payment is None:  # not a charge of ours
        db.session.rollback()
        return None
    booked = _booked(payment)
    db.session.rollback()
    if booked or (payment.status == "succeeded" and not charge.get("balance_transaction")):
        return payment
    return book_payment_intent(intent_id)


def _booked(payment: Payment) -> bool:
    """The payment's charge is booked and, on a destination charge, its application fee and
    its transfer recorded."""
    if payment.status != "succeeded" or payment.stripe_balance_transaction_id is None:
        return False
    if payment.charge_type != "destination":
        return True
    fee_due = bool(payment.application_fee_amount)  # Stripe makes no application fee of 0
    return ((not fee_due or _fee_booked(payment.order_id)) and db.session.scalar(select(Movement.status).where(
        Movement.order_id == payment.order_id, Movement.kind == "transfer")) == "succeeded")


def _fee_booked(order_id: str) -> bool:
    return db.session.scalar(select(JournalEntry.id).where(
        JournalEntry.kind == APPLICATION_FEE, JournalEntry.local_type == "order",
        JournalEntry.local_id == order_id).limit(1)) is not None


def book_unsettled(limit: int = 500) -> int:
    """Fetch again the succeeded payments whose charge is still unbooked a while after success
    (a lost or late `charge.updated`); returns how many were looked at."""
    intents = _unsettled(limit)
    failed: AppError | None = None
    for intent_id in intents:
        try:
            book_payment_intent(intent_id)
        except AppError as error:  # Stripe unreachable or busy: the others still go; next sweep retries
            log.warning("booking the charge of %s failed: %s", intent_id, error.code)
            failed = failed or error
    if failed is not None:
        raise failed  # the job shows it failed
    return len(intents)


@atomic
def _unsettled(limit: int) -> list[str]:
    cutoff = utcnow() - UNSETTLED_AFTER
    fee_booked = select(JournalEntry.id).where(
        JournalEntry.kind == APPLICATION_FEE, JournalEntry.local_type == "order",
        JournalEntry.local_id == Payment.order_id).exists()
    unbooked = or_(Payment.stripe_balance_transaction_id.is_(None),
                   and_(Payment.charge_type == "destination", Payment.application_fee_amount > 0, ~fee_booked))
    return list(db.session.scalars(
        select(Payment.payment_intent_id)
        .where(Payment.status == "succeeded", Payment.succeeded_at < cutoff, unbooked)
        .order_by(Payment.succeeded_at).limit(limit)))


def _record_success(payment: Payment, order: Order, charge: dict) -> None:
    payment.status = "succeeded"
    payment.stripe_charge_id = charge["id"]
    payment.decline_code = None
    card = (charge.get("payment_method_details") or {}).get("card") or {}
    payment.card_brand, payment.card_last4 = card.get("brand"), card.get("last4")
    payment.receipt_url = charge.get("receipt_url")
    payment.succeeded_at = payment.succeeded_at or utcnow()
    bt = charge.get("balance_transaction")
    if isinstance(bt, dict):  # null until the charge settles
        payment.stripe_balance_transaction_id = bt["id"]
        payment.stripe_fee = int(bt["fee"])
        entries.record_charge(bt, order.id)
        if bt["currency"] != order.currency:
            # Booked as Stripe booked it, but the vendors' shares are in the order's currency:
            # separate transfers cannot be made from it (Stripe refuses another currency).
            log.error("charge %s of order %s was converted to %s: the platform does not settle "
                      "in %s (enable multi-currency settlement for every supported currency)",
                      charge["id"], order.id, bt["currency"], order.currency)
    if order.charge_type == "destination":
        if isinstance(charge.get("application_fee"), dict):  # null until the charge settles
            entries.record_application_fee(charge["application_fee"]["balance_transaction"], order.id)
    else:
        for split in order.splits:
            entries.record_platform_fee(split, split.platform_fee, key=f"platform-fee-{split.id}")
    if order.status in BEFORE_PAID:
        order.status = "paid"


def list_payments(user: User, page: int, per_page: int, status: str | None = None,
                  from_=None, to=None) -> dict:
    """The shopper's payments, newest first."""
    from marketplace.pagination import paginate

    stmt = select(Payment).where(Payment.shopper_id == user.id)
    if status:
        stmt = stmt.where(Payment.status == status)
    if from_:
        stmt = stmt.where(Payment.created_at >= from_)
    if to:
        stmt = stmt.where(Payment.created_at < to)
    return paginate(stmt.order_by(Payment.created_at.desc(), Payment.id.desc()), page, per_page).as_dict()


__all__ = [
    "create_payment_intent", "confirm", "list_payments", "handle_payment_intent_succeeded",
    "book_payment_intent", "apply_succeeded", "handle_charge_updated", "book_unsettled",
    "handle_payment_intent_failed", "handle_payment_intent_canceled", "handle_requires_action",
]
