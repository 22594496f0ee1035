"""Transfers to connected accounts, their reversals, and the `py_`/`pyr_` objects they leave.

A transfer made with `Stripe-Account: acct_V` to the platform is an account debit: the
transfer is V's (booked on V's balance) and the platform receives a `py_` payment. A
reversal with `refund_application_fee` also refunds the application fee of the
destination charge the transfer came from, pro rata (in full with a full reversal).
"""
from .. import money
from ..errors import StripeError, invalid
from ..routes import route
from .accounts import check_transfer_region, require_transfers
from .charges import in_settlement, new_charge
from .common import apply_metadata, currency, list_response, positive_amount, show


def balance_insufficient(message=None):
    """400 balance_insufficient."""
    return StripeError(message or (
        "You have insufficient available funds in your Stripe account. Try adding funds "
        "directly to your available balance by creating Charges using the "
        "4000000000000077 test card."), code="balance_insufficient", param="amount")


def make_application_fee(emu, account, originating, charge, amount):
    """An application fee paid by connected `account` out of `charge`, earned by the
    platform on the `originating` platform or direct charge."""
    platform = emu.platform_id
    fee = {"id": emu.new_id("fee"), "object": "application_fee", "account": account,
           "amount": amount, "amount_refunded": 0, "application": "ca_emulator",
           "balance_transaction": None, "charge": charge["id"], "created": emu.now(),
           "currency": charge["currency"], "livemode": False,
           "originating_transaction": originating["id"], "refunded": False,
           "_refunds": []}
    emu.store.add("application_fee", platform, fee)
    bt = emu.add_bt(platform, "application_fee", amount, fee["currency"], fee["id"],
                    "platform_earning", "Application fee", (),
                    emu.later(originating["_available_on"]))
    fee["balance_transaction"] = bt["id"]
    originating["application_fee"] = fee["id"]
    emu.emit("application_fee.created", fee)
    return fee


def make_transfer(emu, dest, amount, cur, source_charge=None, transfer_group=None,
                  app_fee=0, metadata=None, description=None, source=None):
    """Move `amount` from `source` (the platform by default) to `dest`: tr_ on the
    source's balance, py_ on the destination's."""
    platform = source or emu.platform_id
    if dest != emu.platform_id:
        require_transfers(emu, dest)
    available_on = emu.later(source_charge["_available_on"]) if source_charge else emu.now()
    transfer = {
        "id": emu.new_id("tr"), "object": "transfer", "amount": amount,
        "amount_reversed": 0, "balance_transaction": None, "created": emu.now(),
        "currency": cur, "description": description, "destination": dest,
        "destination_payment": None, "livemode": False, "metadata": metadata or {},
        "reversed": False, "source_transaction": source_charge and source_charge["id"],
        "source_type": "card", "transfer_group": transfer_group, "_reversals": [],
    }
    emu.store.add("transfer", platform, transfer)
    transfer["balance_transaction"] = emu.add_bt(
        platform, "transfer", -amount, cur, transfer["id"], "transfer", description, (),
        available_on)["id"]
    payment = new_charge(
        emu, dest, amount, cur, prefix="py", source_transfer=transfer["id"], captured=True,
        amount_captured=amount, outcome=None, transfer_group=transfer_group,
        payment_method_details={"type": "stripe_account", "stripe_account": {}},
        _available_on=available_on)
    details = [{"amount": app_fee, "description": "Application fee",
                "type": "application_fee"}] if app_fee else []
    payment["balance_transaction"] = emu.add_bt(
        dest, "payment", amount, cur, payment["id"], "charge", None, details,
        available_on)["id"]
    transfer["destination_payment"] = payment["id"]
    emu.emit("transfer.created", transfer, account=platform)
    if app_fee:
        make_application_fee(emu, dest, source_charge, payment, app_fee)
    return transfer


def account_total(emu, account, cur):
    """Available plus pending balance of `account` in `cur`."""
    available, pending = emu.balance(account).get(cur, (0, 0))
    return available + pending


def reverse(emu, transfer, amount, source_refund=None, fee_refund=0, metadata=None,
            check_balance=False):
    """Reverse part of a transfer: trr_ and transfer_refund on the transfer's owner, pyr_ and
    payment_refund on the destination (with the application fee credit if any)."""
    remaining = transfer["amount"] - transfer["amount_reversed"]
    if amount > remaining:
        raise invalid("You cannot reverse more than the remaining %d on this transfer."
                      % remaining, "amount")
    dest, cur = transfer["destination"], transfer["currency"]
    if check_balance and account_total(emu, dest, cur) < amount:
        raise balance_insufficient(
            "Insufficient funds in the destination account to reverse this transfer.")
    payment = emu.store.find(transfer["destination_payment"])
    available_on = emu.later(payment["_available_on"])
    reversal = {"id": emu.new_id("trr"), "object": "transfer_reversal", "amount": amount,
                "balance_transaction": None, "created": emu.now(), "currency": cur,
                "destination_payment_refund": None, "metadata": metadata or {},
                "source_refund": source_refund, "transfer": transfer["id"]}
    owner = transfer["_account"]
    emu.store.add("transfer_reversal", owner, reversal)
    reversal["balance_transaction"] = emu.add_bt(
        owner, "transfer_refund", amount, cur, reversal["id"],
        "transfer_reversal", None, (), available_on)["id"]
    refund = {"id": emu.new_id("pyr"), "object": "refund", "amount": amount,
              "balance_transaction": None, "charge": payment["id"], "created": emu.now(),
              "currency": cur, "metadata": {}, "payment_intent": None, "reason": None,
              "receipt_number": None, "source_transfer_reversal": reversal["id"],
              "status": "succeeded", "transfer_reversal": None}
    emu.store.add("refund", dest, refund)
    details = [{"amount": -fee_refund, "description": "Application fee refund",
                "type": "application_fee"}] if fee_refund else []
    refund["balance_transaction"] = emu.add_bt(
        dest, "payment_refund", -amount, cur, refund["id"], "refund", None, details,
        available_on)["id"]
    payment["_refunds"].append(refund["id"])
    payment["amount_refunded"] += amount
    payment["refunded"] = payment["amount_refunded"] >= payment["amount"]
    reversal["destination_payment_refund"] = refund["id"]
    previous = {"amount_reversed": transfer["amount_reversed"],
                "reversed": transfer["reversed"]}
    transfer["amount_reversed"] += amount
    transfer["reversed"] = transfer["amount_reversed"] >= transfer["amount"]
    transfer["_reversals"].append(reversal["id"])
    emu.emit("transfer.reversed", transfer, account=owner, previous=previous)
    return reversal


@route("POST", "/v1/transfers")
def create_transfer(ctx):
    """POST /v1/transfers."""
    p = ctx.params.check("amount", "currency", "destination", "source_transaction",
                         "transfer_group", "metadata", "description", "source_type")
    emu = ctx.emu
    cur = currency(p)
    amount = positive_amount(p, cur)
    dest = p.str("destination", required=True)
    if not ctx.is_platform:
        return _account_debit(ctx, p, dest, amount, cur)
    require_transfers(emu, dest)
    check_transfer_region(emu, dest)
    source = None
    if p.has("source_transaction"):
        source = emu.store.get("charge", p.str("source_transaction"), ctx.account, "charge",
                               "source_transaction")
        if source["status"] != "succeeded" or not source["captured"]:
            raise invalid("The source_transaction charge must be captured and succeeded.",
                          "source_transaction")
        settled = source["_settle_cur"]
        if settled != cur:
            raise invalid("The currency of source_transaction's balance transaction (%s) "
                          "must be the same as the transfer currency (%s)"
                          % (settled, cur), "source_transaction")
        used = sum(t["amount"] for t in emu.store.all("transfer", ctx.account)
                   if t["source_transaction"] == source["id"])
        captured = in_settlement(source, source["amount_captured"])
        if used + amount > captured:
            raise balance_insufficient(
                "Transfers using this source_transaction would exceed the charge: %d of "
                "%d already transferred." % (used, captured))
    elif emu.balance(ctx.account).get(cur, (0, 0))[0] < amount:
        raise balance_insufficient()
    transfer = make_transfer(emu, dest, amount, cur, source_charge=source,
                             transfer_group=p.str("transfer_group"),
                             metadata=p.metadata() or {}, description=p.str("description"))
    return show(ctx, transfer)


def _account_debit(ctx, p, dest, amount, cur):
    """A connected account pays the platform (Connect account debits)."""
    emu = ctx.emu
    if dest != emu.platform_id:
        raise invalid("A connected account can only transfer to its platform (%s)."
                      % emu.platform_id, "destination")
    if p.has("source_transaction"):
        raise invalid("source_transaction cannot be used for an account debit.",
                      "source_transaction")
    acct = emu.store.find(ctx.account)
    if cur != acct["default_currency"]:
        raise invalid("Account debits must be in the connected account's default currency "
                      "(%s)." % acct["default_currency"], "currency")
    available, pending = emu.balance(ctx.account).get(cur, (0, 0))
    if available < amount:
        raise balance_insufficient(
            "Insufficient funds in the connected account for this account debit.")
    transfer = make_transfer(emu, dest, amount, cur, transfer_group=p.str("transfer_group"),
                             metadata=p.metadata() or {}, description=p.str("description"),
                             source=ctx.account)
    return show(ctx, transfer)


def _transfer(ctx, param="id"):
    return ctx.emu.store.get("transfer", ctx.args["tid"], ctx.account, "transfer", param)


@route("GET", "/v1/transfers/<tid>")
def retrieve_transfer(ctx):
    """GET /v1/transfers/{id}."""
    return show(ctx, _transfer(ctx))


@route("POST", "/v1/transfers/<tid>")
def update_transfer(ctx):
    """POST /v1/transfers/{id}: metadata, description."""
    p = ctx.params.check("metadata", "description")
    transfer = _transfer(ctx)
    previous = {}
    before = apply_metadata(transfer, p)
    if before is not None:
        previous["metadata"] = before
    if p.has("description") and p.str("description") != transfer["description"]:
        previous["description"] = transfer["description"]
        transfer["description"] = p.str("description")
    if previous:
        ctx.emu.emit("transfer.updated", transfer, previous=previous)
    return show(ctx, transfer)


@route("GET", "/v1/transfers")
def list_transfers(ctx):
    """GET /v1/transfers with destination / transfer_group filters."""
    dest, group = ctx.params.str("destination"), ctx.params.str("transfer_group")
    return list_response(ctx, "transfer", "/v1/transfers",
                         lambda t: (dest is None or t["destination"] == dest)
                         and (group is None or t["transfer_group"] == group),
                         extra=("destination", "transfer_group"))


@route("POST", "/v1/transfers/<tid>/reversals")
def create_reversal(ctx):
    """POST /v1/transfers/{id}/reversals (may draw on the account's pending funds)."""
    p = ctx.params.check("amount", "description", "metadata", "refund_application_fee")
    transfer = _transfer(ctx)
    remaining = transfer["amount"] - transfer["amount_reversed"]
    amount = positive_amount(p, transfer["currency"], required=False, default=remaining)
    if remaining == 0:
        raise invalid("Transfer %s has already been fully reversed." % transfer["id"])
    emu = ctx.emu
    source = emu.store.find(transfer["source_transaction"] or "")
    destination_charge = bool(source and source.get("transfer") == transfer["id"])
    credit = 0
    if p.bool("refund_application_fee", False):
        fee = emu.store.find((source or {}).get("application_fee") or "") \
            if destination_charge else None
        if fee is not None:
            left = fee["amount"] - fee["amount_refunded"]
            credit = left if amount == remaining else min(
                left, money.pro_rata(amount, transfer["amount"], fee["amount"]))
            if credit:
                from .fees import refund_fee
                refund_fee(emu, fee, credit, credit_account=False)
    reversal = reverse(emu, transfer, amount, metadata=p.metadata() or {},
                       check_balance=not destination_charge, fee_refund=credit)
    return show(ctx, reversal)


@route("GET", "/v1/transfers/<tid>/reversals")
def list_reversals(ctx):
    """GET /v1/transfers/{id}/reversals."""
    transfer = _transfer(ctx)
    return list_response(ctx, "transfer_reversal",
                         "/v1/transfers/%s/reversals" % transfer["id"],
                         lambda r: r["transfer"] == transfer["id"])


@route("GET", "/v1/transfers/<tid>/reversals/<rid>")
def retrieve_reversal(ctx):
    """GET /v1/transfers/{id}/reversals/{reversal}."""
    transfer = _transfer(ctx)
    reversal = ctx.emu.store.get("transfer_reversal", ctx.args["rid"], ctx.account,
                                 "transfer_reversal")
    if reversal["transfer"] != transfer["id"]:
        raise invalid("No such transfer reversal: %s" % ctx.args["rid"])
    return show(ctx, reversal)
