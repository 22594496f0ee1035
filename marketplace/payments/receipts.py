"""A payment in full, and the order's receipt (JSON, or a PDF made with fpdf2).

Both are read from what the ledger side recorded (the order's frozen lines, the charge's card
and receipt page, the refunds): no Stripe call. Refunds still under way are listed with their
status; `net_paid` counts only the refunds that succeeded.
"""
from __future__ import annotations

from fpdf import FPDF
from sqlalchemy import select

from marketplace.auth.models import User
from marketplace.database import isoformat
from marketplace.errors import Conflict, NotFound
from marketplace.extensions import db
from marketplace.money import exponent
from marketplace.orders.models import Order
from marketplace.payments.models import Payment, Refund
from marketplace.vendors.models import Vendor

LISTED_REFUNDS = ("pending", "succeeded", "requires_action")


def payment_detail(user: User, payment_id: str) -> dict:
    """One payment for its shopper or an admin (404 for anyone else)."""
    payment = db.session.get(Payment, payment_id)
    if payment is None or (user.role != "admin" and payment.shopper_id != user.id):
        raise NotFound("No such payment.", code="payment_not_found")
    refunds = _refunds(payment.order_id)
    return {
        "id": payment.id, "order_id": payment.order_id, "payment_intent_id": payment.payment_intent_id,
        "status": payment.status, "amount": payment.amount, "currency": payment.currency,
        "charge_type": payment.charge_type, "stripe_charge_id": payment.stripe_charge_id,
        "stripe_fee": payment.stripe_fee, "application_fee_amount": payment.application_fee_amount,
        "refunded": sum(r.amount for r in refunds if r.status == "succeeded"),
        "card": _card(payment), "refunds": refunds, "receipt_url": payment.receipt_url,
        "checkout_session_id": payment.checkout_session_id,
        "created_at": isoformat(payment.created_at), "succeeded_at": isoformat(payment.succeeded_at),
    }


def receipt(user: User, order_id: str) -> dict:
    """The receipt of a paid order, for its shopper or an admin."""
    order = db.session.get(Order, order_id)
    if order is None or (user.role != "admin" and order.shopper_id != user.id):
        raise NotFound("No such order.", code="order_not_found")
    payment = order.payment_summary
    if payment is None or payment.status != "succeeded":
        raise Conflict("The order has not been paid.", code="order_not_paid", details={"status": order.status})
    refunds = [r for r in _refunds(order.id) if r.status in LISTED_REFUNDS]
    refunded = sum(r.amount for r in refunds if r.status == "succeeded")
    return {
        "order_id": order.id, "paid_at": isoformat(payment.succeeded_at), "currency": order.currency,
        "items": [{"name": i.name, "vendor_id": i.vendor_id, "unit_price": i.unit_price,
                   "quantity": i.quantity, "amount": i.amount} for i in sorted(order.items, key=lambda i: i.position)],
        "subtotal": order.subtotal, "total": order.total, "card": _card(payment),
        "refunds": [{"id": r.id, "amount": r.amount, "status": r.status, "created_at": isoformat(r.created_at)}
                    for r in refunds],
        "net_paid": order.total - refunded, "receipt_url": payment.receipt_url,
    }


def _refunds(order_id: str) -> list[Refund]:
    return list(db.session.scalars(select(Refund).where(Refund.order_id == order_id)
                                   .order_by(Refund.created_at, Refund.id)))


def _card(payment: Payment) -> dict | None:
    if payment.card_brand is None and payment.card_last4 is None:
        return None
    return {"brand": payment.card_brand, "last4": payment.card_last4}


def format_amount(amount: int, currency: str) -> str:
    """`12.34 USD`, `1234 JPY`, `1.234 KWD`: the minor units shown with the currency's exponent."""
    places = exponent(currency)
    sign, amount = ("-" if amount < 0 else ""), abs(amount)
    if places == 0:
        return f"{sign}{amount} {currency.upper()}"
    units, minor = divmod(amount, 10 ** places)
    return f"{sign}{units}.{minor:0{places}d} {currency.upper()}"


def receipt_pdf(data: dict) -> bytes:
    """The receipt as a one-page (or longer) PDF: items with their vendors, totals, card, refunds."""
    cur = data["currency"]
    vendors = {v.id: v.display_name for v in db.session.scalars(
        select(Vendor).where(Vendor.id.in_({i["vendor_id"] for i in data["items"]})))}
    pdf = FPDF(format="A4")
    pdf.set_title(f"Receipt {data['order_id']}")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, "Receipt", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    for line in (f"Order {data['order_id']}", f"Paid {data['paid_at'] or ''}", _card_line(data["card"])):
        pdf.cell(0, 6, _latin1(line), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    with pdf.table(col_widths=(70, 45, 25, 15, 25), text_align=("LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT")) as table:
        table.row(("Item", "Vendor", "Unit price", "Qty", "Amount"))
        for item in data["items"]:
            table.row((_latin1(item["name"]), _latin1(vendors.get(item["vendor_id"]) or item["vendor_id"]),
                       format_amount(item["unit_price"], cur), str(item["quantity"]),
                       format_amount(item["amount"], cur)))
    pdf.ln(4)
    rows = [("Subtotal", data["subtotal"]), ("Total", data["total"])]
    rows += [(f"Refund {r['created_at']} ({r['status']})", -r["amount"]) for r in data["refunds"]]
    rows.append(("Net paid", data["net_paid"]))
    for label, amount in rows:
        pdf.cell(140, 6, _latin1(label))
        pdf.cell(0, 6, format_amount(amount, cur), align="R", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _card_line(card: dict | None) -> str:
    return f"Card {card['brand'] or ''} ending {card['last4'] or ''}" if card else "Card: not recorded"


def _latin1(text: str) -> str:
    """The PDF's core fonts are Latin-1: other characters are shown as '?' rather than failing."""
    return text.encode("latin-1", "replace").decode("latin-1")
