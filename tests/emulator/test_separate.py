"""Separate charges and transfers, reversals and the balance rules around them."""
import pytest
import stripe

from .conftest import make_vendor
from .helpers import balance, bts, check_balance_matches, opts, pay

DAY = 86400


def test_separate_transfers_share_the_charge(client, control):
    v1, v2 = make_vendor(client, control), make_vendor(client, control)
    pi = pay(client, 3000, transfer_group="order_7")
    charge = client.v1.charges.retrieve(pi.latest_charge)
    t1 = client.v1.transfers.create(params={
        "amount": 1800, "currency": "usd", "destination": v1, "transfer_group": "order_7",
        "source_transaction": charge.id})
    t2 = client.v1.transfers.create(params={
        "amount": 900, "currency": "usd", "destination": v2, "transfer_group": "order_7",
        "source_transaction": charge.id})
    assert bts(client) == [("charge", 3000, 117, 2883, "charge", "ch_"),
                           ("transfer", -1800, 0, -1800, "transfer", "tr_"),
                           ("transfer", -900, 0, -900, "transfer", "tr_")]
    assert bts(client, v1) == [("payment", 1800, 0, 1800, "charge", "py_")]
    payment = client.v1.charges.retrieve(t2.destination_payment, options=opts(v2))
    assert payment.source_transfer == t2.id
    group = client.v1.transfers.list(params={"transfer_group": "order_7"})
    assert [t.id for t in group.data] == [t2.id, t1.id]
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.transfers.create(params={
            "amount": 301, "currency": "usd", "destination": v2,
            "source_transaction": charge.id})
    assert err.value.code == "balance_insufficient"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.transfers.create(params={
            "amount": 300, "currency": "eur", "destination": v2,
            "source_transaction": charge.id})
    assert err.value.param == "source_transaction"
    # funds of source-transaction transfers become available with the charge
    bt = client.v1.balance_transactions.retrieve(charge.balance_transaction)
    vbt = client.v1.balance_transactions.list(options=opts(v1)).data[0]
    assert vbt.available_on == bt.available_on
    control.advance(2 * DAY)
    assert balance(client, v1) == (1800, 0)
    assert balance(client) == (183, 0)
    check_balance_matches(client)


def test_transfer_without_source_needs_available_balance(client, control, vendor):
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.transfers.create(params={"amount": 500, "currency": "usd",
                                           "destination": vendor})
    assert err.value.code == "balance_insufficient" and err.value.http_status == 400
    pay(client, 1000, pm="pm_card_bypassPending")
    assert balance(client) == (941, 0)
    tr = client.v1.transfers.create(params={"amount": 500, "currency": "usd",
                                            "destination": vendor})
    assert tr.source_transaction is None
    assert balance(client) == (441, 0) and balance(client, vendor) == (500, 0)


def test_refund_then_reverse_separate_transfer(client, control, vendor):
    pi = pay(client, 2000)
    tr = client.v1.transfers.create(params={
        "amount": 1500, "currency": "usd", "destination": vendor,
        "source_transaction": pi.latest_charge})
    refund = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 1000})
    assert refund.transfer_reversal is None
    assert client.v1.transfers.retrieve(tr.id).amount_reversed == 0
    # the vendor's funds are still pending: a reversal may draw on them
    rev = client.v1.transfers.reversals.create(tr.id, params={"amount": 750})
    assert rev.amount == 750 and rev.destination_payment_refund.startswith("pyr_")
    assert bts(client)[-1] == ("transfer_refund", 750, 0, 750, "transfer_reversal", "trr")
    assert bts(client, vendor)[-1] == ("payment_refund", -750, 0, -750, "refund", "pyr")
    assert balance(client, vendor) == (0, 750)
    transfer = client.v1.transfers.retrieve(tr.id, params={"expand": ["destination_payment"]})
    assert transfer.amount_reversed == 750 and not transfer.reversed
    assert transfer.destination_payment.amount_refunded == 750
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.transfers.reversals.create(tr.id, params={"amount": 751})
    rest = client.v1.transfers.reversals.create(tr.id)
    assert rest.amount == 750 and client.v1.transfers.retrieve(tr.id).reversed
    check_balance_matches(client, vendor)


def test_reversal_refused_beyond_the_vendor_balance(client, control, vendor):
    pay(client, 5000, pm="pm_card_bypassPending")
    tr = client.v1.transfers.create(params={"amount": 1000, "currency": "usd",
                                            "destination": vendor})
    client.v1.payouts.create(params={"amount": 800, "currency": "usd"},
                             options=opts(vendor))
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.transfers.reversals.create(tr.id, params={"amount": 500})
    assert err.value.code == "balance_insufficient"
    client.v1.transfers.reversals.create(tr.id, params={"amount": 200})
    assert balance(client, vendor) == (0, 0)


def test_transfer_to_account_not_onboarded(client):
    acct = client.v1.accounts.create(params={"type": "express"})
    with pytest.raises(stripe.InvalidRequestError) as err:
        pay(client, 1000, transfer_data={"destination": acct.id})
    assert err.value.code == "insufficient_capabilities_for_transfer"
