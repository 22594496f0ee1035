"""Fields computed when an object is shown: embedded lists and the clock-derived status."""


def sublist(emu, ids, url):
    """An embedded list object of the objects with these ids (oldest first), newest first."""
    items = [emu.store.find(i) for i in reversed(ids)]
    return {"object": "list", "data": [emu.render(o) for o in items[:10]],
            "has_more": len(items) > 10, "total_count": len(items), "url": url}


def _balance_transaction(emu, obj, out):
    out["status"] = "available" if obj["available_on"] <= emu.now() else "pending"


def _charge(emu, obj, out):
    if not obj.get("transfer_data"):
        out.pop("transfer", None)  # only destination charges have the field


def includable(emu, node, field):
    """A list Stripe shows only when expanded (`expand[]=refunds` on a charge,
    `expand[]=line_items` on a Checkout Session)."""
    obj = emu.store.find(node["id"])
    if node.get("object") == "charge" and field == "refunds":
        return sublist(emu, obj["_refunds"], "/v1/charges/%s/refunds" % obj["id"])
    if node.get("object") == "checkout.session" and field == "line_items":
        from .resources.checkout import line_items
        return line_items(obj)
    if node.get("object") == "invoice" and field in ("payments", "confirmation_secret"):
        from .resources.invoices import includable as invoice_includable
        return invoice_includable(emu, obj, field)
    return None


def _transfer(emu, obj, out):
    out["reversals"] = sublist(emu, obj["_reversals"],
                               "/v1/transfers/%s/reversals" % obj["id"])


def _application_fee(emu, obj, out):
    out["refunds"] = sublist(emu, obj["_refunds"],
                             "/v1/application_fees/%s/refunds" % obj["id"])


def _account(emu, obj, out):
    out["external_accounts"] = sublist(emu, obj["_external_accounts"],
                                       "/v1/accounts/%s/external_accounts" % obj["id"])


RENDERERS = {
    "balance_transaction": _balance_transaction,
    "charge": _charge,
    "transfer": _transfer,
    "application_fee": _application_fee,
    "account": _account,
}


def _dispute(emu, obj, out):
    from .resources.disputes import render_dispute
    render_dispute(emu, obj, out)


RENDERERS["dispute"] = _dispute


def _invoice(emu, obj, out):
    from .resources.invoices import render_invoice
    render_invoice(emu, obj, out)


def _subscription(emu, obj, out):
    from .resources.subscriptions import render_subscription
    render_subscription(emu, obj, out)


def _subscription_item(emu, obj, out):
    from .resources.subscriptions import render_item
    render_item(emu, obj, out)


RENDERERS["invoice"] = _invoice
RENDERERS["subscription"] = _subscription
RENDERERS["subscription_item"] = _subscription_item
