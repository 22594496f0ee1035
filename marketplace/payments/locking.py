"""Row locks that serialize every change to an order's money (payment, refunds, disputes)."""
from __future__ import annotations

import logging

from sqlalchemy import select

from marketplace.extensions import db
from marketplace.orders.models import Order
from marketplace.payments.models import Payment

log = logging.getLogger(__name__)


def lock_order(order_id: str) -> Order | None:
    """SELECT ... FOR UPDATE the order (fresh from the database) for the rest of the transaction."""
    stmt = (
        select(Order).where(Order.id == order_id).with_for_update()
        .execution_options(populate_existing=True)
    )
    return db.session.scalar(stmt)


def payment_for_intent(payment_intent_id: str) -> Payment | None:
    """The local Payment of a PaymentIntent, if it is one of ours."""
    return db.session.scalar(select(Payment).where(Payment.payment_intent_id == payment_intent_id))


def payment_for_charge(charge_id: str, payment_intent_id: str | None = None) -> Payment | None:
    """The local Payment of a charge (by charge id, else by its PaymentIntent)."""
    payment = db.session.scalar(select(Payment).where(Payment.stripe_charge_id == charge_id))
    if payment is None and payment_intent_id:
        payment = payment_for_intent(payment_intent_id)
    return payment


def locked_payment(intent_id: str) -> tuple[Payment | None, Order | None]:
    """The Payment of a PaymentIntent and its order, the order row locked; (None, None) if not ours."""
    payment = payment_for_intent(intent_id)
    if payment is None:
        log.warning("payment intent %s belongs to no order: ignored", intent_id)
        return None, None
    order = lock_order(payment.order_id)
    db.session.refresh(payment)
    return payment, order
