"""Disputes: opened by the createDispute test cards, countered with evidence, closed.

The platform (owner of the charge) is debited the amount and the dispute fee at once
(`adjustment`, category `dispute`); an inquiry (`pm_card_createDisputeInquiry`) withdraws
nothing. Countering a dispute (submitting evidence) costs the dispute countered fee (a
`stripe_fee` balance transaction, category `fee`). Won: the amount comes back
(`dispute_reversal`) and so does the countered fee; the dispute fee itself is not returned
(Stripe's policy since June 2025). Both fee transactions are listed in the dispute's
`balance_transactions` beside the withdrawal and reinstatement. Evidence
`uncategorized_text` of `winning_evidence` or `losing_evidence` closes it a moment later, as
in Stripe's test mode; the `close` control closes it at once.
"""
from .. import money
from ..errors import invalid
from ..routes import route
from .charges import in_settlement
from .common import apply_metadata, list_response, show

EVIDENCE_FIELDS = (
    "access_activity_log", "billing_address", "cancellation_policy",
    "cancellation_policy_disclosure", "cancellation_rebuttal", "customer_communication",
    "customer_email_address", "customer_name", "customer_purchase_ip", "customer_signature",
    "duplicate_charge_documentation", "duplicate_charge_explanation", "duplicate_charge_id",
    "product_description", "receipt", "refund_policy", "refund_policy_disclosure",
    "refund_refusal_explanation", "service_date", "service_documentation",
    "shipping_address", "shipping_carrier", "shipping_date", "shipping_documentation",
    "shipping_tracking_number", "uncategorized_file", "uncategorized_text")


def open_dispute(emu, charge, reason="fraudulent"):
    """A dispute on a settled charge; the platform is debited amount + fee (not for an inquiry)."""
    now = emu.now()
    owner, cur = charge["_account"], charge["currency"]
    inquiry = reason == "inquiry"
    details = charge["payment_method_details"] or {}
    card = details.get("card") or {}
    dispute = {
        "id": emu.new_id("dp"), "object": "dispute", "amount": charge["amount"],
        "balance_transactions": [], "charge": charge["id"], "created": now,
        "currency": cur, "enhanced_eligibility_types": [],
        "evidence": dict({k: None for k in EVIDENCE_FIELDS}, enhanced_evidence={}),
        "evidence_details": {"due_by": now + 7 * 86400, "enhanced_eligibility": {},
                             "has_evidence": False, "past_due": False,
                             "submission_count": 0},
        "is_charge_refundable": inquiry, "livemode": False, "metadata": {},
        "payment_intent": charge["payment_intent"],
        "payment_method_details": {"card": {"brand": card.get("brand"),
                                            "case_type": "inquiry" if inquiry else "chargeback",
                                            "network_reason_code": "10.4",
                                            "network": card.get("network")},
                                   "type": "card"},
        "reason": "general" if inquiry else reason,
        "status": "warning_needs_response" if inquiry else "needs_response", "_bts": [],
        "_countered": False,
    }
    emu.store.add("dispute", owner, dispute)
    charge.update(disputed=True, _dispute=dispute["id"])
    emu.emit("charge.dispute.created", dispute, account=owner)
    if not inquiry:
        settled = charge["_settle_cur"]
        bt = emu.add_bt(owner, "adjustment", -in_settlement(charge, charge["amount"]), settled,
                        dispute["id"], "dispute", "Chargeback withdrawal for %s" % charge["id"],
                        [{"amount": money.dispute_fee(settled), "description": "Dispute fee",
                          "type": "stripe_fee"}])
        dispute["_bts"].append(bt["id"])
        emu.emit("charge.dispute.funds_withdrawn", dispute, account=owner)
    return dispute


def _counter(emu, dispute):
    """Evidence submitted for the first time: the dispute countered fee is charged."""
    if dispute["_countered"] or dispute["status"].startswith("warning"):
        return
    dispute["_countered"] = True
    settled = emu.store.find(dispute["charge"])["_settle_cur"]
    bt = emu.add_bt(dispute["_account"], "stripe_fee", -money.dispute_fee(settled),
                    settled, dispute["id"], "fee",
                    "Dispute countered fee for %s" % dispute["id"])
    dispute["_bts"].append(bt["id"])


CLOSED = ("won", "lost", "warning_closed", "prevented")


def close_dispute(emu, dispute, outcome):
    """Close as won (amount and countered fee reinstated) or lost; an inquiry just closes."""
    if dispute["status"] in CLOSED:
        raise invalid("This dispute is already closed.")
    previous = {"status": dispute["status"]}
    owner = dispute["_account"]
    if dispute["status"].startswith("warning"):
        dispute.update(status="warning_closed", is_charge_refundable=True)
        emu.emit("charge.dispute.closed", dispute, account=owner, previous=previous)
        return dispute
    dispute["status"] = outcome
    if outcome == "won":
        charge = emu.store.find(dispute["charge"])
        settled = charge["_settle_cur"]
        bt = emu.add_bt(owner, "adjustment", in_settlement(charge, dispute["amount"]), settled,
                        dispute["id"], "dispute_reversal",
                        "Chargeback reversal for %s" % dispute["charge"])
        dispute["_bts"].append(bt["id"])
        if dispute["_countered"]:
            bt = emu.add_bt(owner, "stripe_fee", money.dispute_fee(settled),
                            settled, dispute["id"], "fee",
                            "Dispute countered fee refund for %s" % dispute["id"])
            dispute["_bts"].append(bt["id"])
    emu.emit("charge.dispute.closed", dispute, account=owner, previous=previous)
    if outcome == "won":
        emu.emit("charge.dispute.funds_reinstated", dispute, account=owner)
    return dispute


def render_dispute(emu, obj, out):
    """Dispute.balance_transactions are full objects."""
    out["balance_transactions"] = [emu.render(emu.store.find(b)) for b in obj["_bts"]]


def _get(ctx):
    return ctx.emu.store.get("dispute", ctx.args["did"], ctx.account, "dispute", "dispute")


@route("GET", "/v1/disputes/<did>")
def retrieve_dispute(ctx):
    """GET /v1/disputes/{id}."""
    return show(ctx, _get(ctx))


@route("GET", "/v1/disputes")
def list_disputes(ctx):
    """GET /v1/disputes with charge / payment_intent filters."""
    charge, pi = ctx.params.str("charge"), ctx.params.str("payment_intent")
    return list_response(ctx, "dispute", "/v1/disputes",
                         lambda d: (charge is None or d["charge"] == charge)
                         and (pi is None or d["payment_intent"] == pi),
                         extra=("charge", "payment_intent"))


@route("POST", "/v1/disputes/<did>")
def update_dispute(ctx):
    """POST /v1/disputes/{id}: evidence and metadata; submit=true puts it under review."""
    p = ctx.params.check("evidence", "metadata", "submit")
    dispute = _get(ctx)
    if dispute["status"] in CLOSED:
        raise invalid("This dispute is already closed.")
    previous = {}
    evidence = p.dict("evidence")
    if evidence:
        previous["evidence"] = dict(dispute["evidence"])
        for key, value in evidence.items():
            if key not in EVIDENCE_FIELDS:
                raise invalid("Received unknown parameter: evidence[%s]" % key,
                              "evidence[%s]" % key)
            dispute["evidence"][key] = value
        dispute["evidence_details"]["has_evidence"] = True
    before = apply_metadata(dispute, p)
    if before is not None:
        previous["metadata"] = before
    emu = ctx.emu
    if p.bool("submit", True) and evidence:
        previous["status"] = dispute["status"]
        dispute["status"] = "warning_under_review" if dispute["status"].startswith(
            "warning") else "under_review"
        dispute["evidence_details"]["submission_count"] += 1
        _counter(emu, dispute)
        text = dispute["evidence"].get("uncategorized_text")
        if text in ("winning_evidence", "losing_evidence"):
            outcome = "won" if text == "winning_evidence" else "lost"
            emu.scheduler.add(("dispute", dispute["id"]), emu.settle_delay,
                              lambda: close_dispute(emu, dispute, outcome)
                              if dispute["status"] not in CLOSED else None)
    emu.emit("charge.dispute.updated", dispute, account=ctx.account,
             previous=previous or None)
    return show(ctx, dispute)


@route("POST", "/v1/disputes/<did>/close")
def accept_dispute(ctx):
    """POST /v1/disputes/{id}/close: accept the dispute (it is lost)."""
    ctx.params.check()
    return show(ctx, close_dispute(ctx.emu, _get(ctx), "lost"))
