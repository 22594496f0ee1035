"""The catalog: vendors create and edit products; anyone lists active ones."""
from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from marketplace import money
from marketplace.auth.models import User
from marketplace.catalog.models import Product
from marketplace.catalog.schemas import price_message
from marketplace.errors import NotFound, ValidationFailed
from marketplace.extensions import db
from marketplace.pagination import paginate
from marketplace.vendors.service import vendor_for_user

log = logging.getLogger(__name__)

EDITABLE = ("name", "description", "price", "currency", "stock", "active")


def create_product(user: User, fields: dict[str, Any]) -> Product:
    """A new product of the caller's vendor (which must exist)."""
    vendor = vendor_for_user(user)
    product = Product(vendor_id=vendor.id, **{k: fields[k] for k in EDITABLE if k in fields})
    _set_recurring(product, fields.get("recurring"))
    db.session.add(product)
    db.session.commit()
    return _priced(product)


def get_product(product_id: str) -> Product:
    """One product by id (inactive ones too); 404 when unknown."""
    product = db.session.get(Product, product_id)
    if product is None:
        raise NotFound("No such product.", code="product_not_found")
    return product


def list_products(page: int, per_page: int, vendor_id: str | None = None) -> dict:
    """Active products, newest first; optionally one vendor's."""
    stmt = select(Product).where(Product.active.is_(True))
    if vendor_id:
        stmt = stmt.where(Product.vendor_id == vendor_id)
    stmt = stmt.order_by(Product.created_at.desc(), Product.id.desc())
    return paginate(stmt, page, per_page).as_dict()


def update_product(user: User, product_id: str, changes: dict[str, Any]) -> Product:
    """Edit a product of the caller's vendor; anyone else's product is a 404."""
    vendor = vendor_for_user(user)
    product = db.session.get(Product, product_id)
    if product is None or product.vendor_id != vendor.id:
        raise NotFound("No such product.", code="product_not_found")
    price = changes.get("price", product.price)
    currency = changes.get("currency", product.currency)
    if not money.is_valid_amount(price, currency):
        raise ValidationFailed(details={"price": [price_message(currency)]})
    for key in EDITABLE:
        if key in changes:
            setattr(product, key, changes[key])
    if "recurring" in changes:
        _set_recurring(product, changes["recurring"])
    db.session.commit()
    return _priced(product)


def _set_recurring(product: Product, recurring: dict | None) -> None:
    product.recurring_interval = recurring["interval"] if recurring else None
    product.recurring_interval_count = recurring.get("interval_count", 1) if recurring else None


def _priced(product: Product) -> Product:
    """A recurring product gets the Stripe Price of its terms now (a new one when they
    changed; subscriptions keep theirs); subscribing makes it too if Stripe was away."""
    if product.recurring_interval is None:
        return product
    from marketplace.errors import AppError
    from marketplace.subscriptions.service import ensure_price

    try:
        return ensure_price(product.id)
    except AppError as unpriced:  # the product is saved; its Price is made when someone subscribes
        db.session.rollback()
        log.warning("product %s saved without its Stripe Price for now (%s)", product.id, unpriced.code)
        return db.session.get(Product, product.id)
