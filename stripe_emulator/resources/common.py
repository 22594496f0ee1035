"""Checks and helpers shared by the resource handlers."""
from .. import money
from ..errors import StripeError, invalid
from ..store import created_filter, paginate

CURRENCIES = frozenset(
    "usd eur gbp cad aud chf sek nok dkk pln czk huf nzd sgd hkd mxn brl inr "
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf "
    "bhd jod kwd omr tnd".split())


def currency(params, key="currency", required=True):
    """A lowercase supported currency."""
    value = params.str(key, required=required)
    if value is None:
        return None
    value = value.lower()
    if value not in CURRENCIES:
        raise invalid("Invalid currency: %s. Stripe currently supports these currencies: %s"
                      % (value, ", ".join(sorted(CURRENCIES))), key)
    return value


def check_amount(amount, cur, param="amount", minimum=True):
    """Enforce the currency's minimum, the maximum and the three-decimal rule."""
    if money.exponent(cur) == 3 and amount % 10 != 0:
        raise invalid("Amounts in %s must be divisible by 10 (the last digit must be 0)."
                      % cur.upper(), param, code="invalid_amount")
    if minimum and amount < money.minimum(cur):
        raise StripeError(
            "Amount must be at least %d %s minor units" % (money.minimum(cur), cur),
            code="amount_too_small", param=param, saved=False)
    if amount > money.MAXIMUM:
        raise StripeError("Amount must be no more than %d" % money.MAXIMUM,
                          code="amount_too_large", param=param, saved=False)


def positive_amount(params, cur, key="amount", required=True, default=None):
    """An integer amount > 0 in minor units."""
    amount = params.int(key, default=default, required=required)
    if amount is None:
        return None
    if amount <= 0:
        raise invalid("Invalid positive integer", key, code="parameter_invalid_integer")
    if money.exponent(cur) == 3 and amount % 10 != 0:
        raise invalid("Amounts in %s must be divisible by 10." % cur.upper(), key,
                      code="invalid_amount")
    if amount > money.MAXIMUM:
        raise StripeError("Amount must be no more than %d" % money.MAXIMUM,
                          code="amount_too_large", param=key, saved=False)
    return amount


def apply_metadata(obj, params):
    """Merge a metadata parameter into obj['metadata']; '' values delete keys."""
    if not params.has("metadata"):
        return None
    before = dict(obj.get("metadata") or {})
    new = params.metadata()
    if new is None:
        obj["metadata"] = {}
    else:
        for k, v in new.items():
            if v == "":
                obj["metadata"].pop(k, None)
            else:
                obj["metadata"][k] = v
    return before if before != obj["metadata"] else None


def list_response(ctx, kind, url, match=None, owner=None, extra=()):
    """A paginated list of `kind` owned by the request's account, filtered by `match`."""
    params = ctx.params
    params.check("limit", "starting_after", "ending_before", "created", *extra)
    when = created_filter(params)
    items = [o for o in ctx.emu.store.all(kind, owner or ctx.account)
             if when(o["created"]) and (match is None or match(o))]
    return paginate(items, params, url, ctx.emu.render)


def show(ctx, obj):
    """The rendered object."""
    return ctx.emu.render(obj)
