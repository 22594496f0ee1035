"""Destination charges: the worked examples of STRIPE.md, to the cent."""
import pytest

from .helpers import balance, bts, check_balance_matches, event_types, opts, pay

DAY = 86400


def test_destination_charge_with_application_fee(client, control, vendor):
    pi = pay(client, 1000, transfer_data={"destination": vendor},
             application_fee_amount=123, transfer_group="order_1",
             expand=["latest_charge.balance_transaction"])
    assert pi.status == "succeeded" and pi.amount_received == 1000
    charge = pi.latest_charge
    assert charge.balance_transaction.fee == 59 and charge.balance_transaction.net == 941
    assert charge.balance_transaction.fee_details[0].type == "stripe_fee"
    assert charge.transfer.startswith("tr_") and charge.application_fee.startswith("fee_")
    assert bts(client) == [
        ("charge", 1000, 59, 941, "charge", "ch_"),
        ("transfer", -1000, 0, -1000, "transfer", "tr_"),
        ("application_fee", 123, 0, 123, "platform_earning", "fee"),
    ]
    assert bts(client, vendor) == [("payment", 1000, 123, 877, "charge", "py_")]
    assert balance(client) == (0, 64)
    assert balance(client, vendor) == (0, 877)

    transfer = client.v1.transfers.retrieve(charge.transfer)
    assert transfer.destination == vendor and transfer.source_transaction == charge.id
    payment = client.v1.charges.retrieve(transfer.destination_payment,
                                         options=opts(vendor))
    assert payment.source_transfer == transfer.id and payment.amount == 1000
    fee = client.v1.application_fees.retrieve(charge.application_fee)
    assert (fee.account, fee.amount, fee.originating_transaction) == (vendor, 123, charge.id)
    assert fee.charge == payment.id
    fees = client.v1.application_fees.list(params={"charge": charge.id})
    assert [f.id for f in fees.data] == [fee.id]

    control.advance(2 * DAY)
    assert balance(client) == (64, 0)
    assert balance(client, vendor) == (877, 0)
    check_balance_matches(client)
    check_balance_matches(client, vendor)
    # asynchronous capture: success first, the money movements with charge.updated after
    assert event_types(client) == [
        "payment_intent.created", "charge.succeeded", "payment_intent.succeeded",
        "transfer.created", "application_fee.created", "charge.updated",
        "balance.available"]


@pytest.mark.emulator_only  # a fresh platform account
def test_destination_with_transfer_amount(client, vendor):
    pay(client, 1000, transfer_data={"destination": vendor, "amount": 877})
    assert bts(client) == [("charge", 1000, 59, 941, "charge", "ch_"),
                           ("transfer", -877, 0, -877, "transfer", "tr_")]
    assert bts(client, vendor) == [("payment", 877, 0, 877, "charge", "py_")]
    assert client.v1.application_fees.list().data == []


@pytest.mark.emulator_only  # a fresh platform account
def test_full_refund_with_reverse_transfer_and_fee(client, vendor):
    pi = pay(client, 1000, transfer_data={"destination": vendor},
             application_fee_amount=123)
    refund = client.v1.refunds.create(params={
        "payment_intent": pi.id, "reverse_transfer": True, "refund_application_fee": True},
        options=opts(key="refund-1"))
    assert refund.amount == 1000 and refund.transfer_reversal.startswith("trr_")
    assert bts(client)[3:] == [
        ("refund", -1000, 0, -1000, "refund", "re_"),
        ("application_fee_refund", -123, 0, -123, "platform_earning_refund", "fr_"),
        ("transfer_refund", 1000, 0, 1000, "transfer_reversal", "trr"),
    ]
    assert bts(client, vendor)[1:] == [("payment_refund", -1000, -123, -877, "refund", "pyr")]
    assert balance(client) == (0, -59)
    assert balance(client, vendor) == (0, 0)
    reversal = client.v1.transfers.reversals.retrieve(
        client.v1.charges.retrieve(pi.latest_charge).transfer, refund.transfer_reversal)
    assert reversal.source_refund == refund.id
    assert reversal.destination_payment_refund.startswith("pyr_")
    charge = client.v1.charges.retrieve(pi.latest_charge, params={
        "expand": ["application_fee", "transfer"]})
    assert charge.refunded and charge.amount_refunded == 1000
    assert "refunds" not in charge  # not included by default since 2022-11-15
    listed = client.v1.charges.retrieve(pi.latest_charge, params={"expand": ["refunds"]})
    assert listed.refunds.data[0].id == refund.id
    assert charge.application_fee.refunded and charge.application_fee.amount_refunded == 123
    assert charge.transfer.reversed and charge.transfer.amount_reversed == 1000
    refund = client.v1.refunds.retrieve(refund.id, params={
        "expand": ["transfer_reversal", "balance_transaction"]})
    assert refund.transfer_reversal.amount == 1000
    assert refund.balance_transaction.amount == -1000
    types = event_types(client)
    assert {"refund.created", "charge.refunded", "transfer.reversed",
            "application_fee.refunded"} <= set(types)
    check_balance_matches(client)
    check_balance_matches(client, vendor)


def test_refund_without_flags_leaves_vendor_alone(client, vendor):
    pi = pay(client, 1000, transfer_data={"destination": vendor},
             application_fee_amount=123)
    client.v1.refunds.create(params={"charge": pi.latest_charge, "amount": 400})
    assert bts(client)[-1] == ("refund", -400, 0, -400, "refund", "re_")
    assert balance(client, vendor) == (0, 877)
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert charge.amount_refunded == 400 and not charge.refunded


def test_partial_refunds_pro_rata_then_rest(client, vendor):
    pi = pay(client, 1000, transfer_data={"destination": vendor},
             application_fee_amount=123)
    flags = {"reverse_transfer": True, "refund_application_fee": True}
    client.v1.refunds.create(params=dict(payment_intent=pi.id, amount=333, **flags))
    assert bts(client, vendor)[-1] == ("payment_refund", -333, -41, -292, "refund", "pyr")
    client.v1.refunds.create(params=dict(payment_intent=pi.id, **flags))
    assert bts(client, vendor)[-1] == ("payment_refund", -667, -82, -585, "refund", "pyr")
    assert balance(client, vendor) == (0, 0)
    transfer = client.v1.transfers.list().data[0]
    assert transfer.amount_reversed == 1000 and transfer.reversed
    assert len(client.v1.transfers.reversals.list(transfer.id).data) == 2
    fee = client.v1.application_fees.list().data[0]
    assert fee.amount_refunded == 123 and len(fee.refunds.data) == 2


def test_application_fee_refund_endpoint(client, vendor):
    pay(client, 2000, transfer_data={"destination": vendor}, application_fee_amount=200)
    fee = client.v1.application_fees.list().data[0]
    fr = client.v1.application_fees.refunds.create(fee.id, params={"amount": 50})
    assert fr.fee == fee.id and fr.amount == 50
    assert bts(client)[-1] == ("application_fee_refund", -50, 0, -50,
                               "platform_earning_refund", "fr_")
    assert bts(client, vendor)[-1] == ("application_fee_refund", 50, 0, 50, "fee", "fr_")
    assert client.v1.application_fees.refunds.retrieve(fee.id, fr.id).amount == 50
    rest = client.v1.application_fees.refunds.create(fee.id)
    assert rest.amount == 150
    assert [r.amount for r in client.v1.application_fees.refunds.list(fee.id).data] == [
        150, 50]
    check_balance_matches(client, vendor)


def test_three_decimal_and_zero_decimal_fees(client, control):
    from .conftest import make_vendor
    control.post("platform", settlement_currencies=["usd", "jpy", "kwd"])
    jp = make_vendor(client, control, country="JP")
    pi = pay(client, 1000, currency="jpy", transfer_data={"destination": jp},
             on_behalf_of=jp, application_fee_amount=100,
             expand=["latest_charge.balance_transaction"])
    assert pi.latest_charge.balance_transaction.fee == 29  # 2.9% of 1000 yen, no fixed part
    pi = pay(client, 10000, currency="kwd", expand=["latest_charge.balance_transaction"])
    # 2.9% of 10.000 KWD = 0.290 plus 0.300 fixed
    assert pi.latest_charge.balance_transaction.fee == 590


def test_a_refund_failing_later_returns_its_amount_to_the_platform_only(client, control, vendor):
    pi = pay(client, 1000, transfer_data={"destination": vendor}, application_fee_amount=123)
    refund = client.v1.refunds.create(params={
        "payment_intent": pi.id, "amount": 400, "reverse_transfer": True, "refund_application_fee": True})
    vendor_before = balance(client, vendor)
    failed = control.post(f"refunds/{refund.id}/fail", failure_reason="lost_or_stolen_card")
    assert (failed["status"], failed["failure_reason"]) == ("failed", "lost_or_stolen_card")
    assert bts(client)[-1] == ("refund_failure", 400, 0, 400, "refund_failure", "re_")
    assert balance(client, vendor) == vendor_before  # the reversal and the fee refund stay
    refund = client.v1.refunds.retrieve(refund.id, params={"expand": ["failure_balance_transaction"]})
    assert refund.status == "failed" and refund.failure_balance_transaction.amount == 400
    assert client.v1.charges.retrieve(pi.latest_charge).amount_refunded == 0
    assert {"refund.updated", "refund.failed", "charge.refund.updated"} <= set(event_types(client))
    assert control.post(f"refunds/{refund.id}/fail")["status"] == "failed"  # once
    assert [bt[0] for bt in bts(client)].count("refund_failure") == 1
    check_balance_matches(client)
    check_balance_matches(client, vendor)
