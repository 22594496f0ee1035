"""Orders: pricing from the catalog, atomic stock reservation, cancellation and release."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import Select, select, update
from sqlalchemy.orm import joinedload, selectinload

from marketplace import audit, fraud, idempotency, stripe_gateway
from marketplace.auth.models import User
from marketplace.catalog.models import Product
from marketplace.database import utcnow
from marketplace.errors import Conflict, NotFound, ValidationFailed
from marketplace.extensions import db
from marketplace.orders import pricing
from marketplace.orders.models import CANCELABLE, Order, OrderItem, OrderSplit
from marketplace.pagination import paginate
from marketplace.vendors.models import Vendor
from marketplace.vendors.service import fee_policy, vendor_for_user

log = logging.getLogger(__name__)


def create_order(user: User, items: list[dict[str, Any]]) -> Order:
    """Price the cart from the catalog, reserve stock atomically and record the order."""
    earlier = idempotency.recovered("order")
    if earlier:  # an attempt with this Idempotency-Key committed the order, then died
        return get_order(user, earlier)
    fraud.check_order_velocity(user.id)
    merged = pricing.merge_lines(items)
    products = _load(Product, [pid for pid, _, _ in merged])
    vendors = _load(Vendor, [p.vendor_id for p in products.values()])
    _check_lines(merged, products, vendors)
    lines = [_line(products[pid], qty) for pid, qty, _ in merged]
    currency = _single_currency(lines, products)
    draft = pricing.build_draft(
        currency, lines, {vid: tuple(fee_policy(v)) for vid, v in vendors.items()}
    )
    pricing.check_total(draft.total, currency)
    _reserve_stock(merged)
    order = _record(user, draft)
    db.session.flush()
    idempotency.bind("order", order.id)
    audit.record("order.created", "order", order.id, amount=order.total, currency=order.currency)
    db.session.commit()
    log.info("order %s created: %s %s, %d split(s)", order.id, order.total, currency, len(draft.splits))
    return order


def _load(model, ids: list[str]) -> dict[str, Any]:
    if not ids:
        return {}
    rows = db.session.scalars(select(model).where(model.id.in_(set(ids))))
    return {row.id: row for row in rows}


def _check_lines(merged, products: dict[str, Product], vendors: dict[str, Vendor]) -> None:
    errors: dict[str, dict[str, list[str]]] = {}
    for pid, _qty, index in merged:
        product = products.get(pid)
        if product is None or not product.active:
            errors[str(index)] = {"product_id": ["Unknown or unavailable product."]}
        elif not vendors[product.vendor_id].can_sell:
            errors[str(index)] = {"product_id": ["The vendor of this product cannot sell now."]}
    if errors:
        raise ValidationFailed(details={"items": errors})


def _line(product: Product, quantity: int) -> pricing.Line:
    return pricing.Line(product.id, product.vendor_id, product.name, product.price, quantity)


def _single_currency(lines: list[pricing.Line], products: dict[str, Product]) -> str:
    currencies = sorted({products[line.product_id].currency for line in lines})
    if len(currencies) > 1:
        raise ValidationFailed(
            details={"items": [f"One currency per order; found {', '.join(currencies)}."]}
        )
    return currencies[0]


def _reserve_stock(merged) -> None:
    """One conditional UPDATE per product, in id order: no oversell, no deadlock."""
    for pid, qty, _index in sorted(merged):
        result = db.session.execute(
            update(Product)
            .where(Product.id == pid, Product.stock >= qty, Product.active.is_(True))
            .values(stock=Product.stock - qty)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            db.session.rollback()
            raise Conflict(
                "Not enough stock for this order.", code="insufficient_stock",
                details={"product_id": pid, "requested": qty},
            )


def _record(user: User, draft: pricing.OrderDraft) -> Order:
    order = Order(
        shopper_id=user.id, status="pending_payment", currency=draft.currency,
        subtotal=draft.total, total=draft.total, platform_fee=draft.platform_fee,
        charge_type=draft.charge_type,
    )
    position = 0
    for split_position, split in enumerate(draft.splits):
        row = OrderSplit(
            vendor_id=split.vendor_id, position=split_position, currency=draft.currency,
            subtotal=split.subtotal, percent_bps=split.percent_bps, fixed=split.fixed,
            platform_fee=split.platform_fee, vendor_net=split.vendor_net, refunded=0,
            status="pending",
        )
        order.splits.append(row)
        for line in split.lines:
            order.items.append(OrderItem(
                split=row, product_id=line.product_id, vendor_id=line.vendor_id,
                position=position, name=line.name, unit_price=line.unit_price,
                quantity=line.quantity, amount=line.amount,
            ))
            position += 1
    db.session.add(order)
    return order


def _with_lines(stmt: Select) -> Select:
    return stmt.options(selectinload(Order.items), selectinload(Order.splits))


def get_order(user: User, order_id: str) -> Order:
    """The order if the caller owns it or is an admin; 404 otherwise."""
    order = db.session.scalar(_with_lines(select(Order).where(Order.id == order_id)))
    if order is None or (user.role != "admin" and order.shopper_id != user.id):
        raise NotFound("No such order.", code="order_not_found")
    return order


def list_orders(
    user: User, page: int, per_page: int, status: str | None = None,
    vendor_id: str | None = None, from_: datetime | None = None, to: datetime | None = None,
) -> dict:
    """A shopper's own orders, or every order for an admin; newest first, filtered."""
    stmt = _with_lines(select(Order))
    if user.role != "admin":
        stmt = stmt.where(Order.shopper_id == user.id)
    if status:
        stmt = stmt.where(Order.status == status)
    if vendor_id:
        stmt = stmt.where(Order.splits.any(OrderSplit.vendor_id == vendor_id))
    if from_:
        stmt = stmt.where(Order.created_at >= from_)
    if to:
        stmt = stmt.where(Order.created_at < to)
    return paginate(stmt.order_by(Order.created_at.desc(), Order.id.desc()), page, per_page).as_dict()


def cancel_order(user: User, order_id: str) -> Order:
    """Cancel the caller's unpaid order: PaymentIntent canceled first, then stock released."""
    order = get_order(user, order_id)
    if order.shopper_id != user.id:
        raise NotFound("No such order.", code="order_not_found")
    if order.status not in CANCELABLE:
        raise Conflict("Only an unpaid order can be canceled.", code="order_not_cancelable")
    payment_intent_id = order.payment_intent_id
    db.session.rollback()  # hold no transaction while Stripe is called
    return _cancel(order_id, payment_intent_id, "order.canceled")


def expire_unpaid_orders(now: datetime | None = None, limit: int = 500) -> int:
    """Cancel the orders still unpaid ORDER_PAYMENT_WINDOW_HOURS after their creation.

    Each is canceled as a shopper's cancel is (its PaymentIntent at Stripe first, then the
    order, its splits and its stock), audited as `order.expired` by the system. An order whose
    PaymentIntent Stripe will not cancel (it succeeded, or is processing) is left to its
    payment events; one that got a PaymentIntent meanwhile waits for the next run. At most
    `limit` orders, oldest first, per run (one Stripe call each); returns how many were
    canceled. A Stripe outage stops the run; the next run takes the rest.
    """
    cutoff = (now or utcnow()) - timedelta(hours=current_app.config["ORDER_PAYMENT_WINDOW_HOURS"])
    due = db.session.execute(
        select(Order.id, Order.payment_intent_id)
        .where(Order.status.in_(CANCELABLE), Order.created_at < cutoff)
        .order_by(Order.created_at, Order.id)
        .limit(limit)
    ).all()
    db.session.rollback()
    expired = 0
    for order_id, payment_intent_id in due:
        try:
            _cancel(order_id, payment_intent_id, "order.expired")
        except Conflict as refused:
            log.info("unpaid order %s not expired: %s", order_id, refused.code)
            continue
        expired += 1
    return expired


def _cancel(order_id: str, payment_intent_id: str | None, action: str) -> Order:
    """Cancel the PaymentIntent read with the order, then the order if it is still unpaid and
    still has that PaymentIntent (a new one made meanwhile was not canceled: 409). An open
    Checkout Session is expired at Stripe first (one that completed meanwhile: 409)."""
    from marketplace.payments import checkout
    from marketplace.payments.locking import lock_order

    checkout.close_open(order_id)
    if payment_intent_id:
        _cancel_payment(order_id, payment_intent_id)
    lock_order(order_id)  # a session opened since close_open looked is seen now, and waits
    if checkout.open_session_of(order_id) is not None:
        db.session.rollback()
        raise Conflict("A hosted checkout was opened for this order meanwhile; try again.",
                       code="checkout_session_open", headers={"Retry-After": "1"})
    same_intent = (Order.payment_intent_id == payment_intent_id if payment_intent_id
                   else Order.payment_intent_id.is_(None))
    moved = db.session.execute(
        update(Order)
        .where(Order.id == order_id, Order.status.in_(CANCELABLE), same_intent)
        .values(status="canceled", canceled_at=utcnow(), updated_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        db.session.rollback()
        raise Conflict("Only an unpaid order can be canceled.", code="order_not_cancelable")
    order = db.session.scalar(_with_lines(select(Order).where(Order.id == order_id)))
    release_stock(order, commit=False)
    for split in order.splits:
        split.status = "canceled"
    audit.record(action, "order", order.id, amount=order.total, currency=order.currency)
    db.session.commit()
    return order


def _cancel_payment(order_id: str, payment_intent_id: str) -> None:
    """Cancel the order's PaymentIntent at Stripe (seam: the payments work records the outcome)."""
    stripe_gateway.cancel_payment_intent(payment_intent_id, f"order-cancel-{order_id}")


def release_stock(order: Order, commit: bool = True) -> bool:
    """Put the order's reserved stock back once; False (nothing done) when already released."""
    claimed = db.session.execute(
        update(Order)
        .where(Order.id == order.id, Order.stock_released_at.is_(None))
        .values(stock_released_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed == 1:
        for item in sorted(order.items, key=lambda i: i.product_id):
            db.session.execute(
                update(Product)
                .where(Product.id == item.product_id)
                .values(stock=Product.stock + item.quantity)
                .execution_options(synchronize_session=False)
            )
    db.session.expire(order, ["stock_released_at"])
    if commit:
        db.session.commit()
    return claimed == 1


def vendor_sales(user: User, page: int, per_page: int, order_status: str | None = None) -> dict:
    """The caller vendor's order splits, newest first."""
    vendor = vendor_for_user(user)
    stmt = (
        select(OrderSplit)
        .where(OrderSplit.vendor_id == vendor.id)
        .options(joinedload(OrderSplit.order))
        .order_by(OrderSplit.created_at.desc(), OrderSplit.id.desc())
    )
    if order_status:
        stmt = stmt.where(OrderSplit.order.has(Order.status == order_status))
    return paginate(stmt, page, per_page).as_dict()
