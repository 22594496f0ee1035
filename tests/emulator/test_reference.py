"""The emulator against the current API's own definition: the reference file is the installed
`stripe` package's, every route is one of its endpoints, and every object the emulator
returns has the fields of the package's class for it: none the API removed, none missing
that Stripe shows by default or that the app reads."""
import json
import pathlib
import re

import pytest

from stripe_emulator import reference
from stripe_emulator.reference import build
from stripe_emulator.routes import build_map, endpoint_reference
from stripe_emulator.shapes import INCLUDABLE, _examples

from .conftest import ValidatingClient
from .helpers import opts, pay
from .shapes import ShapeChecker

pytestmark = pytest.mark.emulator_only
ROOT = pathlib.Path(__file__).resolve().parents[2]

# Fields of the package's classes the emulator never shows, and why. Each is either shown by
# Stripe only in a case the emulator does not model, or belongs to a product it does not
# emulate. The test below fails when one of them starts to be shown (take it off the list)
# and when the app starts to read one.
NEVER_SHOWN = {
    # card-present, Level 3, presentment-currency and Radar-session data
    "charge": {"authorization_code", "level3", "presentment_details", "radar_options"},
    # newer PaymentIntent features (hooks, payment details and records, preview params)
    "payment_intent": {"allowed_payment_method_types", "hooks", "payment_details",
                       "payment_record", "presentment_details"},
    # non-card refunds' fields (description, instructions, next action), presentment data
    "refund": {"description", "instructions_email", "next_action", "presentment_details"},
    # company/individual data of Custom accounts, Stripe's account groups
    "account": {"company", "deleted", "groups", "individual"},
    # Instant Payouts, Issuing and prefunding balances
    "balance": {"instant_available", "issuing", "refund_and_dispute_prefunding"},
    # payout methods and requirements of external accounts, deletion
    "bank_account": {"available_payout_methods", "deleted", "future_requirements",
                     "requirements"},
    # network details the emulator's card networks do not give
    "dispute": {"intended_submission_method", "network_reason_code"},
    # Stripe's event context (for organisations)
    "event": {"context"},
}


def _never_shown(name):
    """NEVER_SHOWN, and for a PaymentMethod every payment method type's hash but a card's."""
    if name != "payment_method":
        return NEVER_SHOWN.get(name, set())
    return set(reference.fields("payment_method")) - set(_examples()["payment_method"])


def test_the_reference_is_the_installed_package():
    committed = json.loads(reference.PATH.read_text())
    assert committed == build.build(build.served_endpoints()), (
        "stripe_emulator/reference/api.json is stale: run "
        ".venv/bin/python -m stripe_emulator.reference.build")


def test_every_route_is_an_endpoint_of_the_current_api():
    rules = [r for r in build_map().iter_rules() if r.rule.startswith("/v1/")]
    assert len(rules) > 50
    for rule in rules:
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            spec = endpoint_reference(rule.endpoint)
            assert "params" in spec and spec["returns"], rule.rule


def _scenario(client, control, vendor):
    """Every kind of object the emulator makes, each in the states it can be in."""
    client.v1.accounts.retrieve(vendor)
    client.v1.accounts.login_links.create(vendor)
    client.v1.account_links.create(params={"account": vendor, "type": "account_onboarding",
                                           "refresh_url": "https://x.example/r",
                                           "return_url": "https://x.example/b"})
    client.v1.accounts.list()
    destination = pay(client, 2000, transfer_data={"destination": vendor},
                      application_fee_amount=200, expand=["latest_charge"])
    separate = pay(client, 3000, transfer_group="g1", metadata={"order_id": "o1"})
    charge = client.v1.charges.retrieve(separate.latest_charge)
    transfer = client.v1.transfers.create(params={
        "amount": 1000, "currency": "usd", "destination": vendor,
        "source_transaction": charge.id, "expand": ["destination_payment"]})
    client.v1.transfers.reversals.create(transfer.id, params={"amount": 100})
    client.v1.transfers.list(params={"expand": ["data.reversals"]})
    client.v1.charges.retrieve(destination.latest_charge.id, params={
        "expand": ["transfer", "application_fee", "balance_transaction", "refunds"]})
    refund = client.v1.refunds.create(params={
        "payment_intent": destination.id, "amount": 500, "reverse_transfer": True,
        "refund_application_fee": True, "expand": ["transfer_reversal.destination_payment_refund"]})
    client.v1.refunds.retrieve(refund.id, params={"expand": ["charge", "balance_transaction"]})
    fee = client.v1.application_fees.list().data[0]
    client.v1.application_fees.refunds.create(fee.id, params={"amount": 10})
    client.v1.application_fees.refunds.list(fee.id)
    pending = pay(client, 1000, pm="pm_card_pendingRefund")
    client.v1.refunds.create(params={"payment_intent": pending.id})
    failing = pay(client, 1000, pm="pm_card_refundFail")
    client.v1.refunds.create(params={"payment_intent": failing.id})
    disputed = pay(client, 1500, pm="pm_card_createDispute")
    control.post("settle")
    (dispute,) = client.v1.disputes.list(params={"payment_intent": disputed.id}).data
    client.v1.disputes.update(dispute.id, params={"evidence": {"uncategorized_text": "x"}})
    control.post("disputes/%s/close" % dispute.id, outcome="won")
    client.v1.disputes.retrieve(dispute.id)
    for pm in ("pm_card_chargeDeclined", "pm_card_authenticationRequired"):
        try:
            pay(client, 1000, pm=pm, settle=False)
        except Exception:  # noqa: BLE001 - the decline's body was checked by the client
            pass
    client.v1.payment_intents.list(params={"expand": ["data.latest_charge"]})
    client.v1.payment_intents.search(params={"query": "metadata['order_id']:'o1'"})
    control.advance(3 * 86400)
    payout = client.v1.payouts.create(params={"amount": 300, "currency": "usd"},
                                      options=opts(vendor))
    control.advance(2 * 86400)
    client.v1.payouts.retrieve(payout.id, options=opts(vendor))
    client.v1.balance.retrieve()
    client.v1.balance.retrieve(options=opts(vendor))
    client.v1.balance_transactions.list(params={"limit": 100})
    client.v1.balance_transactions.list(params={"limit": 100}, options=opts(vendor))
    endpoint = client.v1.webhook_endpoints.create(params={"url": "http://127.0.0.1:9/h",
                                                          "enabled_events": ["*"]})
    client.v1.webhook_endpoints.delete(endpoint.id)
    for account in (None, vendor):
        for event in client.v1.events.list(params={"limit": 100}, options=opts(account)) \
                .auto_paging_iter():
            del event


def test_every_object_shows_the_current_fields(target, control, vendor):
    from . import conftest

    checker = ShapeChecker()
    conftest.SHAPES, saved = checker, conftest.SHAPES
    try:
        client = target.client()
        _scenario(client, control, vendor)
    finally:
        conftest.SHAPES = saved
    examples = _examples()
    problems = []
    for name in sorted(checker.counts):
        fields = set(reference.fields(name))
        defaults = set(examples.get(name, {})) - INCLUDABLE.get(name, frozenset())
        missing_defaults = (defaults & fields) - checker.seen[name]
        if missing_defaults:
            problems.append("%s lacks default fields %s" % (name, sorted(missing_defaults)))
        never = checker.never_seen(name)
        if never != _never_shown(name):
            problems.append("%s never shows %s (listed: %s)" % (
                name, sorted(never), sorted(_never_shown(name))))
    assert not problems, "\n".join(problems)
    # ... and the app reads none of the fields never shown (a name the app reads that some
    # other object does show is read there: the scan cannot tell the objects apart)
    shown = set().union(*checker.seen.values())
    read = _read_by_app()
    unread = {name: sorted((_never_shown(name) & read) - shown) for name in checker.counts}
    assert unread == {name: [] for name in checker.counts}, unread
    assert {"charge", "payment_intent", "refund", "transfer", "transfer_reversal",
            "application_fee", "fee_refund", "payout", "dispute", "balance_transaction",
            "balance", "account", "bank_account", "event", "webhook_endpoint", "login_link",
            "account_link", "capability"} <= set(checker.counts)


def _read_by_app():
    """Every key the app reads as `x["key"]` or `x.get("key")`."""
    read = set()
    for path in (ROOT / "marketplace").rglob("*.py"):
        text = path.read_text()
        read |= set(re.findall(r'\[\s*"([a-z_]+)"\s*\]', text))
        read |= set(re.findall(r'\.get\(\s*"([a-z_]+)"', text))
    return read


def test_the_scan_of_what_the_app_reads_finds_it():
    assert {"balance_transaction", "transfer", "destination_payment", "failure_reason",
            "latest_charge"} <= _read_by_app()
