"""Disputes: opened by pm_card_createDispute, updated with evidence, closed by a control."""
from .. import money
from ..errors import invalid
from ..routes import route
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


def open_dispute(emu, charge):
    """A fraudulent dispute on a succeeded charge; the platform is debited amount + fee."""
    now = emu.now()
    owner, cur = charge["_account"], charge["currency"]
    dispute = {
        "id": emu.new_id("dp"), "object": "dispute", "amount": charge["amount"],
        "balance_transactions": [], "charge": charge["id"], "created": now,
        "currency": cur, "evidence": {k: None for k in EVIDENCE_FIELDS},
        "evidence_details": {"due_by": now + 7 * 86400, "has_evidence": False,
                             "past_due": False, "submission_count": 0},
        "is_charge_refundable": False, "livemode": False, "metadata": {},
        "payment_intent": charge["payment_intent"], "reason": "fraudulent",
        "status": "needs_response", "_bts": [],
    }
    emu.store.add("dispute", owner, dispute)
    bt = emu.add_bt(owner, "adjustment", -charge["amount"], cur, dispute["id"], "dispute",
                    "Chargeback withdrawal for %s" % charge["id"],
                    [{"amount": money.dispute_fee(cur), "description": "Dispute fee",
                      "type": "stripe_fee"}])
    dispute["_bts"].append(bt["id"])
    charge.update(disputed=True, dispute=dispute["id"])
    emu.emit("charge.dispute.created", dispute, account=owner)
    emu.emit("charge.dispute.funds_withdrawn", dispute, account=owner)
    return dispute


def close_dispute(emu, dispute, outcome):
    """Close as won (funds reinstated) or lost."""
    if dispute["status"] in ("won", "lost"):
        raise invalid("This dispute is already closed.")
    previous = {"status": dispute["status"]}
    owner = dispute["_account"]
    dispute["status"] = outcome
    emu.emit("charge.dispute.closed", dispute, account=owner, previous=previous)
    if outcome == "won":
        bt = emu.add_bt(owner, "adjustment", dispute["amount"], dispute["currency"],
                        dispute["id"], "dispute_reversal",
                        "Chargeback reversal for %s" % dispute["charge"])
        dispute["_bts"].append(bt["id"])
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
    if dispute["status"] in ("won", "lost"):
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
    if p.bool("submit", True) and evidence:
        previous["status"] = dispute["status"]
        dispute["status"] = "under_review"
        dispute["evidence_details"]["submission_count"] += 1
    ctx.emu.emit("charge.dispute.updated", dispute, account=ctx.account,
                 previous=previous or None)
    return show(ctx, dispute)


@route("POST", "/v1/disputes/<did>/close")
def accept_dispute(ctx):
    """POST /v1/disputes/{id}/close: accept the dispute (it is lost)."""
    ctx.params.check()
    return show(ctx, close_dispute(ctx.emu, _get(ctx), "lost"))
