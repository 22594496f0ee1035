"""The /_emulator/ controls: reset, onboarding, clock, faults, limits, webhooks, disputes,
3-D Secure."""
from werkzeug.utils import redirect

from ..errors import StripeError, not_found
from ..faults import MODES as FAULT_MODES, FaultError
from ..limits import LimitsError
from ..routes import route
from ..webhooks import MODES as WEBHOOK_MODES
from .accounts import onboard
from .checkout import expire_due
from .disputes import close_dispute
from .payment_intents import authenticated, authentication_failed
from .payouts import advance_payouts
from . import setup_intents
from .refunds import FAILURE_REASONS, fail_refund
from .subscriptions import advance as advance_billing


@route("POST", "/_emulator/reset")
def reset(ctx):
    """Forget everything."""
    ctx.emu.reset()
    return {"reset": True}


def _account(ctx):
    acct = ctx.emu.store.find(ctx.args["aid"])
    if acct is None or acct["_kind"] != "account":
        raise not_found("account", ctx.args["aid"])
    return acct


@route("POST", "/_emulator/accounts/<aid>/onboard")
def onboard_account(ctx):
    """Complete onboarding; optional bank_account_number decides later payouts."""
    number = ctx.params.str("bank_account_number") or ctx.params.str("account_number")
    with ctx.emu.lock:
        return ctx.emu.render(onboard(ctx.emu, _account(ctx), number))


@route("GET", "/_emulator/onboarding/<aid>/<token>")
def onboarding_link(ctx):
    """Where an account link points: onboard, then go to the link's return_url."""
    emu = ctx.emu
    with emu.lock:
        link = emu.store.find("al_" + ctx.args["token"])
        acct = _account(ctx)
        onboard(emu, acct)
        target = link and link["_return_url"]
    if target:
        return redirect(target)
    return {"onboarded": acct["id"]}


@route("GET", "/_emulator/clock")
def get_clock(ctx):
    """The emulator's current time."""
    return {"now": ctx.emu.now()}


@route("POST", "/_emulator/clock/advance")
def advance_clock(ctx):
    """Move the clock on: subscriptions bill what falls due on the way, each step at its
    time; payouts progress and their events are sent; Checkout Sessions expire."""
    seconds = ctx.params.int("seconds", required=True, minimum=0)
    emu = ctx.emu
    with emu.lock:
        before = emu.now()
        now = advance_billing(ctx, seconds)
        advance_payouts(emu)
        expire_due(emu)
        announce_available(emu, before, now)
        emu.after_change()
    return {"now": now}


def announce_available(emu, before, now):
    """`balance.available` for each account whose pending funds became available."""
    from .balance import balance_object
    accounts = set()
    for (kind, account), items in list(emu.store.lists.items()):
        if kind != "balance_transaction":
            continue
        if any(before < bt["available_on"] <= now and bt["net"] > 0 for bt in items):
            accounts.add(account)
    for account in sorted(accounts):
        emu.emit("balance.available", balance_object(emu, account), account=account)


@route("GET", "/_emulator/billing")
@route("POST", "/_emulator/billing")
def billing_control(ctx):
    """Stripe Billing's Dashboard settings for failed payments: `retry_days` (days after the
    previous automatic attempt each retry is made, default [3, 5, 7]) and `after_retries`
    (`cancel` the subscription, default, or mark it `unpaid`, or leave it `past_due`)."""
    from .invoices import AFTER_RETRIES, billing_settings
    p = ctx.params
    emu = ctx.emu
    with emu.lock:
        settings = billing_settings(emu)
        if ctx.method == "POST":
            for key in p.data:
                if key not in ("retry_days", "after_retries"):
                    raise StripeError("Unknown billing setting: %s" % key, saved=False)
            days = settings["retry_days"]
            if p.has("retry_days"):
                try:
                    days = [int(d) for d in p.list("retry_days")]
                except (TypeError, ValueError):
                    raise StripeError("retry_days must be a list of whole days.",
                                      saved=False) from None
                if any(d < 1 for d in days) or len(days) > 8:
                    raise StripeError("retry_days: at most 8 retries, each at least a day "
                                      "after the previous attempt.", saved=False)
            after = p.str("after_retries", settings["after_retries"], choices=AFTER_RETRIES)
            settings.update(retry_days=days, after_retries=after)
        return dict(settings)


@route("POST", "/_emulator/capture")
def capture_mode(ctx):
    """How captures settle from now on: `async` (Stripe's default: balance transaction,
    transfer and application fee `delay_seconds` later, with charge.updated) or `sync`."""
    p = ctx.params
    emu = ctx.emu
    with emu.lock:
        if p.has("mode"):
            emu.capture_mode = p.str("mode", choices=("async", "sync"))
        if p.has("delay_seconds"):
            emu.settle_delay = max(0.0, float(p.raw("delay_seconds")))
    return {"mode": emu.capture_mode, "delay_seconds": emu.settle_delay}


@route("POST", "/_emulator/platform")
def platform_settings(ctx):
    """The platform's settlement currencies (multi-currency settlement, which Stripe sets in
    its Dashboard): `settlement_currencies` (default ["usd"]) and `default_currency` ("usd").
    A charge in a currency the platform does not settle in is converted to the default one."""
    from .common import CURRENCIES
    p = ctx.params
    emu = ctx.emu
    with emu.lock:
        if p.has("settlement_currencies"):
            wanted = {c.lower() for c in p.list("settlement_currencies")}
            if not wanted or not wanted <= CURRENCIES:
                raise StripeError("settlement_currencies must be supported currencies.")
            emu.settlement_currencies = wanted
        if p.has("default_currency"):
            emu.default_currency = p.str("default_currency").lower()
        emu.settlement_currencies.add(emu.default_currency)
        return {"default_currency": emu.default_currency,
                "settlement_currencies": sorted(emu.settlement_currencies)}


@route("POST", "/_emulator/settle")
def settle_now(ctx):
    """Run every asynchronous step still waiting now: charges settling, refunds the card
    network answers, disputes opening or closing."""
    emu = ctx.emu
    ran = emu.scheduler.flush()
    with emu.lock:
        emu.after_change()
    return {"ran": ran}


@route("POST", "/_emulator/faults")
def add_fault(ctx):
    """Arm a fault for `count` requests under `path_prefix` (all, or a `probability` share)."""
    p = ctx.params
    mode = p.str("mode", required=True, choices=FAULT_MODES)
    seconds = p.raw("seconds")
    try:
        fault = ctx.emu.faults.add(p.str("path_prefix", "/v1/"), mode, p.int("count", 1),
                                   p.int("status"), float(seconds) if seconds else None,
                                   p.str("method"), probability=_number(p, "probability"),
                                   seed=p.raw("seed"))
    except FaultError as error:
        raise StripeError(str(error), saved=False) from None
    return fault


def _number(params, key):
    value = params.raw(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise StripeError("Invalid number: %r" % (value,), param=key, saved=False)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise StripeError("Invalid number: %r" % (value,), param=key, saved=False) from None


@route("GET", "/_emulator/faults")
def list_faults(ctx):
    """The armed faults."""
    return {"data": ctx.emu.faults.list()}


@route("DELETE", "/_emulator/faults")
def clear_faults(ctx):
    """Disarm all faults."""
    ctx.emu.faults.clear()
    return {"cleared": True}


@route("GET", "/_emulator/limits")
def get_limits(ctx):
    """The per-call latency and the read and write rate limits in force (null: off)."""
    return ctx.emu.limits.settings()


@route("POST", "/_emulator/limits")
def set_limits(ctx):
    """Any of `latency_seconds`, `read_per_second`, `write_per_second` (0 or null: off) and
    `should_retry` (whether a 429 says `Stripe-Should-Retry: true`); answers the settings."""
    try:
        return ctx.emu.limits.update(**ctx.params.data)
    except LimitsError as error:
        raise StripeError(str(error), saved=False) from None


@route("GET", "/_emulator/requests")
def list_requests(ctx):
    """The API requests served since the last reset or clear, by method and route, most first,
    with how many of them the rate limiter refused (`rate_limited`, answered 429)."""
    emu = ctx.emu
    with emu.lock:
        counts, limited = dict(emu.requests), dict(emu.rate_limited)
    return {"data": [{"method": e.split(" ", 1)[0], "path": e.split(" ", 1)[1], "count": n,
                      "rate_limited": limited.get(e, 0)}
                     for e, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))],
            "total": sum(counts.values()), "rate_limited": sum(limited.values())}


@route("DELETE", "/_emulator/requests")
def clear_requests(ctx):
    """Start counting again."""
    with ctx.emu.lock:
        ctx.emu.requests.clear()
        ctx.emu.rate_limited.clear()
    return {"cleared": True}


@route("POST", "/_emulator/webhooks")
def set_webhook_mode(ctx):
    """normal | duplicate | shuffle | paused."""
    mode = ctx.params.str("mode", required=True, choices=WEBHOOK_MODES)
    ctx.emu.webhooks.set_mode(mode)
    return ctx.emu.webhooks.status()


@route("GET", "/_emulator/webhooks")
def webhook_status(ctx):
    """Mode and delivery counters."""
    return ctx.emu.webhooks.status()


@route("POST", "/_emulator/webhooks/flush")
def flush_webhooks(ctx):
    """Deliver everything pending now, synchronously (optional mode for this flush)."""
    mode = ctx.params.str("mode", choices=WEBHOOK_MODES)
    delivered = ctx.emu.webhooks.flush(mode if mode != "paused" else None)
    return dict(ctx.emu.webhooks.status(), delivered=delivered)


@route("POST", "/_emulator/webhooks/wait")
def wait_webhooks(ctx):
    """Block until background delivery is idle (or `timeout` seconds pass)."""
    timeout = float(ctx.params.raw("timeout") or 10)
    idle = ctx.emu.wait_idle(min(timeout, 60.0))
    return dict(ctx.emu.webhooks.status(), idle=idle)


@route("POST", "/_emulator/disputes/<did>/close")
def close(ctx):
    """Close a dispute as won or lost."""
    outcome = ctx.params.str("outcome", required=True, choices=("won", "lost"))
    emu = ctx.emu
    with emu.lock:
        dispute = emu.store.find(ctx.args["did"])
        if dispute is None or dispute["_kind"] != "dispute":
            raise not_found("dispute", ctx.args["did"])
        return emu.render(close_dispute(emu, dispute, outcome))


@route("POST", "/_emulator/refunds/<rid>/fail")
def fail(ctx):
    """Make a refund fail after the fact, as a card network does (failure_reason optional)."""
    reason = ctx.params.str("failure_reason", choices=FAILURE_REASONS) or "expired_or_canceled_card"
    emu = ctx.emu
    with emu.lock:
        refund = emu.store.find(ctx.args["rid"])
        if refund is None or refund["_kind"] != "refund":
            raise not_found("refund", ctx.args["rid"])
        return emu.render(fail_refund(emu, refund, reason))


# what each kind of intent the customer authenticates does: (object kind, query parameter
# of the return_url, on success, on failure)
AUTHENTICATED = {
    "payment_intents": ("payment_intent", "payment_intent", authenticated,
                        authentication_failed),
    "setup_intents": ("setup_intent", "setup_intent", setup_intents.authenticated,
                      setup_intents.authentication_failed),
}


def _authenticate(ctx, outcome):
    """The customer completes (or fails) 3-D Secure for the intent of the path."""
    emu = ctx.emu
    kind, _, on_success, on_failure = AUTHENTICATED[ctx.path.split("/")[2]]
    intent = emu.store.find(ctx.args["iid"])
    if intent is None or intent["_kind"] != kind:
        raise not_found(kind, ctx.args["iid"])
    if intent["status"] != "requires_action":
        raise StripeError("%s %s does not require action (status %s)."
                          % ("PaymentIntent" if kind == "payment_intent" else "SetupIntent",
                             intent["id"], intent["status"]),
                          code=kind + "_unexpected_state")
    if outcome == "succeed":
        on_success(emu, intent)
    else:
        on_failure(emu, intent)
    emu.after_change()
    return intent


@route("POST", "/_emulator/payment_intents/<iid>/authenticate")
@route("POST", "/_emulator/setup_intents/<iid>/authenticate")
def authenticate(ctx):
    """Finish 3-D Secure: outcome succeed (default) or fail."""
    outcome = ctx.params.str("outcome", "succeed", choices=("succeed", "fail"))
    with ctx.emu.lock:
        return ctx.emu.render(_authenticate(ctx, outcome))


@route("GET", "/_emulator/payment_intents/<iid>/authenticate")
@route("GET", "/_emulator/setup_intents/<iid>/authenticate")
def authenticate_redirect(ctx):
    """The next_action URL: authenticate (?outcome=fail to fail) and go to return_url
    (`?payment_intent=pi_...` or `?setup_intent=seti_...`)."""
    outcome = ctx.params.str("outcome", "succeed", choices=("succeed", "fail"))
    with ctx.emu.lock:
        intent = _authenticate(ctx, outcome)
        target = intent.get("_return_url")
        out = ctx.emu.render(intent)
    if target:
        query = AUTHENTICATED[ctx.path.split("/")[2]][1]
        sep = "&" if "?" in target else "?"
        return redirect("%s%s%s=%s" % (target, sep, query, intent["id"]))
    return out
