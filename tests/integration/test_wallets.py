"""Shoppers' wallets through the emulator: one Customer per shopper, saved cards, paying with
them, a payment's details and the order's receipt (JSON and PDF)."""
import io
import threading

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from marketplace.extensions import db
from marketplace.payments.models import Payment
from marketplace.wallets import service as wallets
from marketplace.wallets.models import Customer, SavedPaymentMethod
from marketplace.auth.models import ApiToken, User
from marketplace.auth.service import hash_token
from tests.payments_helpers import emu, onboarded_vendor, order_for, settle

pytestmark = pytest.mark.needs("emulator")


def _save(client, shopper, payment_method="pm_card_visa"):
    response = client.post("/api/payment-methods", json={"payment_method": payment_method}, headers=shopper)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _customer(user_id: str) -> Customer:
    db.session.rollback()
    return db.session.scalar(select(Customer).where(Customer.user_id == user_id))


def _me(client, headers) -> str:
    """The user id behind a token's headers."""
    db.session.rollback()
    return db.session.scalar(select(ApiToken.user_id).where(
        ApiToken.token_hash == hash_token(headers["Authorization"].split()[1])))


def test_a_wallet_from_the_first_card_to_the_last(client, shopper, emulator):
    setup = client.post("/api/payment-methods/setup-intent", headers=shopper)
    assert setup.status_code == 201, setup.get_json()
    assert setup.get_json()["setup_intent_id"].startswith("seti_") and setup.get_json()["client_secret"]
    customer = _customer(_me(client, shopper))
    stripe_customer = emu(emulator, "GET", f"/v1/customers/{customer.stripe_customer_id}")
    assert stripe_customer["metadata"]["user_id"] == customer.user_id
    assert stripe_customer["email"] == db.session.get(User, customer.user_id).email

    visa = _save(client, shopper)
    assert visa["id"].startswith("pm_") and visa["id"] != "pm_card_visa"
    assert (visa["brand"], visa["last4"], visa["is_default"]) == ("visa", "4242", False)
    assert visa["exp_month"] and visa["exp_year"]
    master = _save(client, shopper, "pm_card_mastercard")
    listed = client.get("/api/payment-methods", headers=shopper).get_json()["data"]
    assert {m["id"] for m in listed} == {visa["id"], master["id"]}
    assert "number" not in str(listed) and "4242424242424242" not in str(listed)
    attached = emu(emulator, "GET", "/v1/payment_methods", customer=customer.stripe_customer_id, type="card")
    assert {m["id"] for m in attached["data"]} == {visa["id"], master["id"]}

    made_default = client.put(f"/api/payment-methods/{master['id']}/default", headers=shopper)
    assert made_default.status_code == 200 and made_default.get_json()["is_default"] is True
    stripe_customer = emu(emulator, "GET", f"/v1/customers/{customer.stripe_customer_id}")
    assert stripe_customer["invoice_settings"]["default_payment_method"] == master["id"]

    assert client.delete(f"/api/payment-methods/{master['id']}", headers=shopper).status_code == 204
    listed = client.get("/api/payment-methods", headers=shopper).get_json()["data"]
    assert [m["id"] for m in listed] == [visa["id"]] and listed[0]["is_default"] is False
    assert _customer(customer.user_id).default_payment_method_id is None
    stripe_customer = emu(emulator, "GET", f"/v1/customers/{customer.stripe_customer_id}")
    assert stripe_customer["invoice_settings"]["default_payment_method"] is None
    assert emu(emulator, "GET", f"/v1/payment_methods/{master['id']}")["customer"] is None
    # Saving the same card again is the same card (no second attachment).
    assert client.post("/api/payment-methods", json={"payment_method": visa["id"]},
                       headers=shopper).get_json()["id"] == visa["id"]
    assert db.session.scalar(select(func.count()).select_from(SavedPaymentMethod)) == 1


def test_another_shoppers_card_is_not_found(client, auth, emulator):
    alice, bob = auth.headers("shopper"), auth.headers("shopper")
    card = _save(client, alice)
    assert client.delete(f"/api/payment-methods/{card['id']}", headers=bob).status_code == 404
    assert client.put(f"/api/payment-methods/{card['id']}/default", headers=bob).status_code == 404
    taken = client.post("/api/payment-methods", json={"payment_method": card["id"]}, headers=bob)
    assert taken.status_code == 404 and taken.get_json()["error"]["code"] == "payment_method_not_found"
    vendor = onboarded_vendor(emulator)
    order = order_for(client, bob, [vendor], [1200])
    paid_with = client.post(f"/api/orders/{order['id']}/confirm", json={"payment_method": card["id"]}, headers=bob)
    assert paid_with.status_code == 404
    assert [m["id"] for m in client.get("/api/payment-methods", headers=alice).get_json()["data"]] == [card["id"]]
    assert client.get("/api/payment-methods", headers=bob).get_json()["data"] == []


def test_concurrent_first_uses_make_one_customer(app, client, shopper, emulator, pg_only):
    user_id = _me(client, shopper)
    db.session.rollback()
    made, errors = [], []
    barrier = threading.Barrier(4)

    def first_use():
        with app.app_context():
            try:
                barrier.wait()
                made.append(wallets.ensure_customer(db.session.get(User, user_id)).stripe_customer_id)
            except Exception as error:  # noqa: BLE001 - reported below
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=first_use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(set(made)) == 1 and len(made) == 4
    email = db.session.get(User, user_id).email
    assert [c["id"] for c in emu(emulator, "GET", "/v1/customers", email=email)["data"]] == made[:1]
    assert db.session.scalar(select(func.count()).select_from(Customer).where(Customer.user_id == user_id)) == 1


def test_a_customer_whose_answer_was_lost_long_ago_is_found_not_made_again(client, shopper, emulator):
    user = db.session.get(User, _me(client, shopper))
    made = emu(emulator, "POST", "/v1/customers", email=user.email, **{"metadata[user_id]": user.id})
    from datetime import timedelta

    from marketplace.database import new_id, utcnow

    db.session.add(Customer(id=new_id("cst"), user_id=user.id, created_at=utcnow() - timedelta(days=2)))
    db.session.commit()
    assert wallets.ensure_customer(user).stripe_customer_id == made["id"]
    assert len(emu(emulator, "GET", "/v1/customers", email=user.email)["data"]) == 1


def _confirm(client, shopper, order_id, **body):
    client.post(f"/api/orders/{order_id}/payment-intent", headers=shopper)
    return client.post(f"/api/orders/{order_id}/confirm", json=body, headers=shopper)


def test_paying_with_the_default_card_and_with_a_named_saved_card(client, shopper, emulator):
    vendors = [onboarded_vendor(emulator) for _ in range(3)]
    missing = _confirm(client, shopper, order_for(client, shopper, vendors, [1000])["id"])
    assert missing.status_code == 422 and missing.get_json()["error"]["code"] == "payment_method_required"

    visa, master = _save(client, shopper), _save(client, shopper, "pm_card_mastercard")
    client.put(f"/api/payment-methods/{master['id']}/default", headers=shopper)
    order = order_for(client, shopper, vendors, [1000, 2500, 730])
    paid = _confirm(client, shopper, order["id"])
    assert paid.status_code == 200 and paid.get_json()["order_status"] == "paid", paid.get_json()
    settle(client, emulator)
    intent = emu(emulator, "GET", f"/v1/payment_intents/{paid.get_json()['payment_intent_id']}")
    assert intent["payment_method"] == master["id"] and intent["customer"] == _customer(_me(client, shopper)).stripe_customer_id
    second = order_for(client, shopper, vendors[:1], [4200])
    named = _confirm(client, shopper, second["id"], payment_method=visa["id"])
    assert named.status_code == 200 and named.get_json()["order_status"] == "paid", named.get_json()
    db.session.rollback()
    cards = {p.order_id: (p.card_brand, p.card_last4) for p in db.session.scalars(select(Payment))}
    assert cards[order["id"]] == ("mastercard", "4444") and cards[second["id"]] == ("visa", "4242")


def test_a_card_used_with_save_payment_method_is_saved(client, shopper, emulator):
    vendor = onboarded_vendor(emulator)
    order = order_for(client, shopper, [vendor], [1999])
    paid = _confirm(client, shopper, order["id"], payment_method="pm_card_visa", save_payment_method=True)
    assert paid.status_code == 200 and paid.get_json()["order_status"] == "paid", paid.get_json()
    settle(client, emulator)  # payment_method.attached arrives too: still one card
    listed = client.get("/api/payment-methods", headers=shopper).get_json()["data"]
    assert len(listed) == 1 and listed[0]["last4"] == "4242"
    intent = emu(emulator, "GET", f"/v1/payment_intents/{paid.get_json()['payment_intent_id']}")
    assert intent["payment_method"] == listed[0]["id"]
    reused = _confirm(client, shopper, order_for(client, shopper, [vendor], [500])["id"],
                      payment_method=listed[0]["id"])
    assert reused.get_json()["order_status"] == "paid", reused.get_json()


def test_a_saved_card_that_needs_authentication_asks_for_it(client, shopper, emulator):
    vendor = onboarded_vendor(emulator)
    card = _save(client, shopper, "pm_card_threeDSecure2Required")
    order = order_for(client, shopper, [vendor], [3100])
    answer = _confirm(client, shopper, order["id"], payment_method=card["id"])
    assert answer.status_code == 200 and answer.get_json()["status"] == "requires_action", answer.get_json()
    assert answer.get_json()["next_action"]
    emu(emulator, "POST", f"/_emulator/payment_intents/{answer.get_json()['payment_intent_id']}/authenticate",
        outcome="succeed")
    settle(client, emulator)
    assert client.get(f"/api/orders/{order['id']}", headers=shopper).get_json()["status"] == "paid"


def test_a_payments_details_and_the_orders_receipt(client, shopper, auth, admin, emulator):
    vendors = [onboarded_vendor(emulator) for _ in range(2)]
    order = order_for(client, shopper, vendors, [1250, 999], quantities=[2, 1])
    assert client.get(f"/api/orders/{order['id']}/receipt", headers=shopper).status_code == 409
    assert _confirm(client, shopper, order["id"], payment_method="pm_card_visa").status_code == 200
    settle(client, emulator)
    refund = client.post(f"/api/orders/{order['id']}/refunds", json={"amount": 500, "reason": "requested_by_customer"},
                         headers=admin)
    assert refund.status_code in (201, 202)
    settle(client, emulator)
    payment_id = db.session.scalar(select(Payment.id).where(Payment.order_id == order["id"]))

    detail = client.get(f"/api/payments/{payment_id}", headers=shopper)
    assert detail.status_code == 200
    body = detail.get_json()
    assert body["card"] == {"brand": "visa", "last4": "4242"} and body["amount"] == 3499
    assert body["receipt_url"].startswith("https://") and body["refunded"] == 500
    assert [r["amount"] for r in body["refunds"]] == [500]
    assert client.get(f"/api/payments/{payment_id}", headers=admin).status_code == 200
    stranger = auth.headers("shopper")
    assert client.get(f"/api/payments/{payment_id}", headers=stranger).status_code == 404
    charge = emu(emulator, "GET", f"/v1/charges/{body['stripe_charge_id']}")
    assert charge["receipt_email"] == db.session.get(User, _me(client, shopper)).email

    receipt = client.get(f"/api/orders/{order['id']}/receipt", headers=shopper).get_json()
    assert receipt["total"] == receipt["subtotal"] == order["total"] == sum(i["amount"] for i in receipt["items"])
    assert receipt["net_paid"] == order["total"] - 500 and receipt["card"]["last4"] == "4242"
    assert [(i["quantity"], i["unit_price"]) for i in receipt["items"]] == [(2, 1250), (1, 999)]
    assert client.get(f"/api/orders/{order['id']}/receipt", headers=stranger).status_code == 404

    pdf = client.get(f"/api/orders/{order['id']}/receipt?format=pdf", headers=admin)
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.data)).pages)
    assert order["id"] in text and "34.99 USD" in text and "29.99 USD" in text and "4242" in text


def test_a_card_detached_in_the_dashboard_is_removed_and_a_stranger_customers_card_is_not_found(
        client, shopper, emulator):
    card = _save(client, shopper)
    emu(emulator, "POST", f"/v1/payment_methods/{card['id']}/detach")  # in Stripe's Dashboard
    assert client.delete(f"/api/payment-methods/{card['id']}", headers=shopper).status_code == 204
    assert client.get("/api/payment-methods", headers=shopper).get_json()["data"] == []
    elsewhere = emu(emulator, "POST", "/v1/customers", email="someone@else.example")
    theirs = emu(emulator, "POST", "/v1/payment_methods/pm_card_visa/attach", customer=elsewhere["id"])
    taken = client.post("/api/payment-methods", json={"payment_method": theirs["id"]}, headers=shopper)
    assert taken.status_code == 404 and taken.get_json()["error"]["code"] == "payment_method_not_found"
    unknown = client.post("/api/payment-methods", json={"payment_method": "pm_nothing_like_it"}, headers=shopper)
    assert unknown.status_code == 404


def test_the_dashboards_detachment_reaches_the_wallet_through_its_event(client, shopper, emulator):
    card = _save(client, shopper)
    client.put(f"/api/payment-methods/{card['id']}/default", headers=shopper)
    settle(client, emulator)
    emu(emulator, "POST", f"/v1/payment_methods/{card['id']}/detach")
    settle(client, emulator)
    assert client.get("/api/payment-methods", headers=shopper).get_json()["data"] == []
    assert _customer(_me(client, shopper)).default_payment_method_id is None
