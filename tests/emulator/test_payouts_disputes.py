"""Payouts (paid, failed, canceled), disputes (won, lost), accounts and account links."""
import pytest
import stripe

from .conftest import make_vendor
from .helpers import balance, bts, check_balance_matches, event_types, opts, pay

DAY = 86400


def _fund(client, vendor, amount=5000):
    pay(client, amount, transfer_data={"destination": vendor})


def test_payout_paid(client, control, vendor):
    _fund(client, vendor)
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.payouts.create(params={"amount": 100, "currency": "usd"},
                                 options=opts(vendor))
    assert err.value.code == "balance_insufficient"  # still pending
    control.advance(2 * DAY)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payouts.create(params={"amount": 5001, "currency": "usd"},
                                 options=opts(vendor))
    po = client.v1.payouts.create(params={"amount": 4000, "currency": "usd"},
                                  options=opts(vendor, "payout-1"))
    assert po.status == "pending" and po.automatic is False
    assert bts(client, vendor)[-1] == ("payout", -4000, 0, -4000, "payout", "po_")
    assert balance(client, vendor) == (1000, 0)
    control.advance(3600)
    assert client.v1.payouts.retrieve(po.id, options=opts(vendor)).status == "in_transit"
    control.advance(DAY)
    po = client.v1.payouts.retrieve(po.id, options=opts(vendor),
                                    params={"expand": ["balance_transaction"]})
    assert po.status == "paid" and po.balance_transaction.amount == -4000
    assert event_types(client, vendor, type="payout.*") == [
        "payout.created", "payout.updated", "payout.updated", "payout.paid"]
    by_payout = client.v1.balance_transactions.list(params={"payout": po.id},
                                                    options=opts(vendor))
    assert [bt.type for bt in by_payout.data] == ["payout"]
    check_balance_matches(client, vendor)


def test_payout_fails_with_test_bank_account(client, control):
    vendor = make_vendor(client, control, bank_account_number="000111111116")
    _fund(client, vendor)
    control.advance(2 * DAY)
    po = client.v1.payouts.create(params={"amount": 3000, "currency": "usd"},
                                  options=opts(vendor))
    control.advance(2 * DAY)
    po = client.v1.payouts.retrieve(po.id, options=opts(vendor))
    assert po.status == "failed" and po.failure_code == "no_account"
    assert po.failure_balance_transaction.startswith("txn_")
    assert bts(client, vendor)[-2:] == [
        ("payout", -3000, 0, -3000, "payout", "po_"),
        ("payout_failure", 3000, 0, 3000, "payout_reversal", "po_")]
    assert balance(client, vendor) == (5000, 0)
    assert "payout.failed" in event_types(client, vendor)
    events = client.v1.events.list(params={"type": "payout.failed"}, options=opts(vendor))
    assert events.data[0].account == vendor


def test_payout_fails_insufficient_funds_via_account_update(client, control, vendor):
    client.v1.accounts.update(vendor, params={"external_account": {
        "object": "bank_account", "country": "US", "currency": "usd",
        "routing_number": "110000000", "account_number": "000222222227"}})
    _fund(client, vendor)
    control.advance(2 * DAY)
    po = client.v1.payouts.create(params={"amount": 1000, "currency": "usd"},
                                  options=opts(vendor))
    control.advance(2 * DAY)
    po = client.v1.payouts.retrieve(po.id, options=opts(vendor))
    assert (po.status, po.failure_code) == ("failed", "insufficient_funds")


def test_payout_cancel(client, control, vendor):
    _fund(client, vendor)
    control.advance(2 * DAY)
    po = client.v1.payouts.create(params={"amount": 1000, "currency": "usd"},
                                  options=opts(vendor))
    po = client.v1.payouts.cancel(po.id, options=opts(vendor))
    assert po.status == "canceled"
    assert bts(client, vendor)[-1] == ("payout_cancel", 1000, 0, 1000, "payout_reversal",
                                       "po_")
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payouts.cancel(po.id, options=opts(vendor))
    assert [p.id for p in client.v1.payouts.list(options=opts(vendor)).data] == [po.id]
    assert "payout.canceled" in event_types(client, vendor)


@pytest.mark.parametrize("outcome", ["won", "lost"])
def test_dispute(client, control, vendor, outcome):
    pi = pay(client, 1000, pm="pm_card_createDispute",
             transfer_data={"destination": vendor}, application_fee_amount=100)
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert charge.disputed and "dispute" not in charge  # removed from Charge: list by charge
    (dispute,) = client.v1.disputes.list(params={"charge": charge.id}).data
    assert dispute.status == "needs_response" and dispute.reason == "fraudulent"
    assert bts(client)[-1] == ("adjustment", -1000, 1500, -2500, "dispute", "dp_")
    assert dispute.balance_transactions[0].fee_details[0].description == "Dispute fee"
    assert balance(client, vendor) == (0, 900)  # the vendor is untouched
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.refunds.create(params={"charge": charge.id})
    assert err.value.code == "charge_disputed"
    dispute = client.v1.disputes.update(dispute.id, params={
        "evidence": {"uncategorized_text": "delivered"}})
    assert dispute.status == "under_review"
    countered = ("stripe_fee", -1500, 0, -1500, "fee", "dp_")  # countering costs a fee
    assert bts(client)[-1] == countered
    closed = control.post("disputes/%s/close" % dispute.id, outcome=outcome)
    assert closed["status"] == outcome
    rows = bts(client)
    if outcome == "won":  # the amount and the countered fee come back, the dispute fee not
        assert rows[-2:] == [("adjustment", 1000, 0, 1000, "dispute_reversal", "dp_"),
                             ("stripe_fee", 1500, 0, 1500, "fee", "dp_")]
    else:
        assert rows[-1] == countered
    dispute = client.v1.disputes.retrieve(dispute.id)
    assert len(dispute.balance_transactions) == (4 if outcome == "won" else 2)
    types = event_types(client)
    assert {"charge.dispute.created", "charge.dispute.funds_withdrawn",
            "charge.dispute.updated", "charge.dispute.closed"} <= set(types)
    assert ("charge.dispute.funds_reinstated" in types) == (outcome == "won")
    assert [d.id for d in client.v1.disputes.list().data] == [dispute.id]
    check_balance_matches(client)


def test_account_lifecycle(client, control):
    acct = client.v1.accounts.create(params={
        "type": "express", "country": "GB", "email": "a@example.com",
        "metadata": {"vendor_id": "42"},
        "settings": {"payouts": {"schedule": {"interval": "manual"}}}})
    assert acct.charges_enabled is False and acct.payouts_enabled is False
    assert "external_account" in acct.requirements.currently_due
    assert acct.default_currency == "gbp"
    link = client.v1.account_links.create(params={
        "account": acct.id, "refresh_url": "https://m.example/refresh",
        "return_url": "https://m.example/return", "type": "account_onboarding"})
    assert link.url.startswith("http") and link.expires_at > link.created
    control.post("accounts/%s/onboard" % acct.id)
    acct = client.v1.accounts.retrieve(acct.id)
    assert acct.charges_enabled and acct.payouts_enabled
    assert acct.requirements.currently_due == []
    assert acct.capabilities.transfers == "active"
    assert acct.external_accounts.data[0].last4 == "6789"
    acct = client.v1.accounts.update(acct.id, params={"email": "b@example.com"})
    assert acct.email == "b@example.com" and acct.metadata["vendor_id"] == "42"
    events = client.v1.events.list(params={"type": "account.updated"},
                                   options=opts(acct.id)).data
    assert events[0].account == acct.id
    assert events[0].data.previous_attributes["email"] == "a@example.com"
    assert events[1].data.object.charges_enabled is True
    assert [a.id for a in client.v1.accounts.list().data] == [acct.id]
