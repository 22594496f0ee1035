"""Connected accounts, their bank accounts, account links, login links and onboarding.

The platform is a US account. Money can only reach a connected account in another region
(US; Europe: the EEA, the UK and Switzerland; elsewhere each country is its own) by a
destination charge with `on_behalf_of`, or by transfers to an account under the `recipient`
service agreement; otherwise Stripe refuses with `transfers_not_allowed`.
"""
import copy

from ..errors import StripeError, invalid
from ..routes import route
from .common import apply_metadata, currency, list_response, show

SUCCESS_ACCOUNT_NUMBER = "000123456789"
# Test bank account numbers (routing 110000000) and how their payouts end.
PAYOUT_FAILURES = {"000111111116": "no_account", "000222222227": "insufficient_funds",
                   "000333333335": "debit_not_authorized", "000444444440": "invalid_currency",
                   "000111111113": "account_closed"}
COUNTRY_CURRENCY = {"US": "usd", "GB": "gbp", "JP": "jpy", "CA": "cad", "AU": "aud",
                    "CH": "chf", "NZ": "nzd", "SG": "sgd", "HK": "hkd", "MX": "mxn",
                    "BR": "brl", "IN": "inr", "SE": "sek", "NO": "nok", "DK": "dkk",
                    "PL": "pln", "CZ": "czk", "HU": "huf"}
DUE = ["business_profile.mcc", "business_profile.url", "external_account",
       "individual.dob.day", "individual.first_name", "individual.last_name",
       "tos_acceptance.date", "tos_acceptance.ip"]
CAPABILITIES = ("card_payments", "transfers")
PLATFORM_COUNTRY = "US"
_EUROPE = frozenset("AT BE BG CH CY CZ DE DK EE ES FI FR GB GR HR HU IE IS IT LI LT LU LV MT NL "
                    "NO PL PT RO SE SI SK".split())


def region(country):
    """The settlement region of a country: US, EU (Europe incl. UK and CH), or itself."""
    return "EU" if country in _EUROPE else country


def _controller(kind):
    if kind == "express":
        return {"fees": {"payer": "application_express"}, "is_controller": True,
                "losses": {"payments": "application"}, "requirement_collection": "stripe",
                "stripe_dashboard": {"type": "express"}, "type": "application"}
    if kind == "custom":
        return {"fees": {"payer": "application_custom"}, "is_controller": True,
                "losses": {"payments": "application"},
                "requirement_collection": "application",
                "stripe_dashboard": {"type": "none"}, "type": "application"}
    return {"is_controller": False, "type": "account"}


def _requirements(due):
    return {"alternatives": [], "current_deadline": None, "currently_due": list(due),
            "disabled_reason": "requirements.past_due" if due else None, "errors": [],
            "eventually_due": list(due), "past_due": list(due),
            "pending_verification": []}


def _schedule(params, current=None):
    sched = params.sub("settings").sub("payouts").sub("schedule")
    out = dict(current or {"delay_days": 2, "interval": "daily"})
    if sched.has("interval"):
        out["interval"] = sched.str("interval", choices=("manual", "daily", "weekly",
                                                         "monthly"))
    if sched.has("delay_days"):
        out["delay_days"] = sched.int("delay_days")
    if sched.has("weekly_anchor"):
        out["weekly_anchor"] = sched.str("weekly_anchor")
    if sched.has("monthly_anchor"):
        out["monthly_anchor"] = sched.int("monthly_anchor")
    return out


def add_bank_account(emu, account, number=None, routing="110000000", cur=None):
    """Attach a bank account (default for its currency) whose number decides payouts."""
    number = number or SUCCESS_ACCOUNT_NUMBER
    for bid in account["_external_accounts"]:
        emu.store.find(bid)["default_for_currency"] = False
    bank = {"id": emu.new_id("ba"), "object": "bank_account", "account": account["id"],
            "account_holder_name": None, "account_holder_type": None,
            "bank_name": "STRIPE TEST BANK", "country": account["country"],
            "currency": cur or account["default_currency"], "default_for_currency": True,
            "fingerprint": emu.new_id("fp")[3:19], "last4": number[-4:], "metadata": {},
            "routing_number": routing, "status": "new", "_number": number}
    emu.store.add("bank_account", account["id"], bank)
    account["_external_accounts"].append(bank["id"])
    return bank


def _external_account(emu, account, params):
    if not params.has("external_account"):
        return
    raw = params.raw("external_account")
    if isinstance(raw, str):
        add_bank_account(emu, account)  # a token: the default succeeding test account
        return
    ext = params.sub("external_account")
    number = ext.str("account_number", required=True)
    add_bank_account(emu, account, number, ext.str("routing_number", "110000000"),
                     currency(ext, required=False))


def _capabilities(params, account):
    caps = params.dict("capabilities")
    for name, spec in caps.items():
        if name not in CAPABILITIES:
            continue
        requested = str((spec or {}).get("requested", "true")).lower() == "true"
        if requested and name not in account["capabilities"]:
            account["capabilities"][name] = "active" if account["charges_enabled"] \
                else "inactive"
        elif not requested:
            account["capabilities"].pop(name, None)


ACCOUNT_PARAMS = ("type", "country", "email", "capabilities", "settings", "metadata",
                  "business_type", "business_profile", "external_account",
                  "tos_acceptance", "default_currency", "individual", "company",
                  "controller")


@route("POST", "/v1/accounts")
def create_account(ctx):
    """POST /v1/accounts."""
    p = ctx.params.check(*ACCOUNT_PARAMS)
    emu = ctx.emu
    kind = p.str("type", "custom", choices=("express", "standard", "custom"))
    country = (p.str("country") or "US").upper()
    acct = {
        "id": emu.new_id("acct"), "object": "account",
        "business_profile": {"mcc": None, "name": None, "url": None,
                             "product_description": None, "support_email": None,
                             "support_phone": None, "support_url": None,
                             "support_address": None},
        "business_type": p.str("business_type"), "capabilities": {},
        "charges_enabled": False, "country": country, "created": emu.now(),
        "default_currency": currency(p, "default_currency", required=False)
        or COUNTRY_CURRENCY.get(country, "eur" if country in _EU else "usd"),
        "details_submitted": False, "email": p.str("email"),
        "future_requirements": _requirements([]), "metadata": {},
        "payouts_enabled": False, "requirements": _requirements(DUE),
        "settings": {"payouts": {"debit_negative_balances": True,
                                 "schedule": _schedule(p),
                                 "statement_descriptor": None},
                     "dashboard": {"display_name": None, "timezone": "Etc/UTC"},
                     "branding": {"icon": None, "logo": None, "primary_color": None,
                                  "secondary_color": None},
                     "card_payments": {"decline_on": {"avs_failure": False,
                                                      "cvc_failure": False},
                                       "statement_descriptor_prefix": None},
                     "payments": {"statement_descriptor": None}},
        "tos_acceptance": {"date": None, "ip": None, "user_agent": None,
                           "service_agreement": p.sub("tos_acceptance").str(
                               "service_agreement", "full", choices=("full", "recipient"))},
        "type": kind, "controller": _controller(kind), "_external_accounts": [],
        "_requested_at": {},
    }
    bp = p.dict("business_profile")
    acct["business_profile"].update({k: v for k, v in bp.items()
                                     if k in acct["business_profile"]})
    apply_metadata(acct, p)
    _capabilities(p, acct)
    if not acct["capabilities"]:
        acct["capabilities"] = {"transfers": "inactive"} \
            if acct["tos_acceptance"]["service_agreement"] == "recipient" \
            else {"card_payments": "inactive", "transfers": "inactive"}
    if acct["tos_acceptance"]["service_agreement"] == "recipient" and \
            "card_payments" in acct["capabilities"]:
        raise invalid("The card_payments capability cannot be requested for an account "
                      "under the recipient service agreement.", "capabilities")
    acct["_requested_at"] = {name: emu.now() for name in acct["capabilities"]}
    emu.store.add("account", emu.platform_id, acct)
    _external_account(emu, acct, p)
    _record_details(acct, p)
    _verify_later(emu, acct)
    return show(ctx, acct)


def _record_details(acct, p):
    """Keep what verification needs: terms accepted (date and ip), a person or a company."""
    tos = p.sub("tos_acceptance")
    if tos.has("date"):
        acct["tos_acceptance"]["date"] = tos.int("date")
    if tos.has("ip"):
        acct["tos_acceptance"]["ip"] = tos.str("ip")
    if p.has("individual") or p.has("company"):
        acct["_identity"] = True


def _verify_later(emu, acct):
    """A Custom account given Stripe's test verification data (accepted terms, a person or a
    company, a bank account) is verified a moment later, as in Stripe's test mode; an
    Express or Standard account is onboarded by its owner in Stripe's hosted flow."""
    tos = acct["tos_acceptance"]
    if acct["type"] != "custom" or acct["details_submitted"] or not (
            tos.get("date") and tos.get("ip") and acct.get("_identity")
            and acct["_external_accounts"]):
        return
    emu.scheduler.add(("verify", acct["id"]), emu.settle_delay,
                      lambda: acct["details_submitted"] or onboard(emu, acct))


_EU = frozenset("AT BE BG CY DE EE ES FI FR GR HR IE IT LT LU LV MT NL PT RO SI SK".split())


def get_account(ctx, aid):
    """A connected account of the platform, or 404."""
    if not ctx.is_platform and aid != ctx.account:
        raise StripeError("No such account: '%s'" % aid, code="resource_missing",
                          param="account", status=404)
    return ctx.emu.store.get("account", aid, ctx.emu.platform_id, "account", "account")


@route("GET", "/v1/accounts/<aid>")
def retrieve_account(ctx):
    """GET /v1/accounts/{id}."""
    return show(ctx, get_account(ctx, ctx.args["aid"]))


@route("GET", "/v1/account")
def retrieve_own_account(ctx):
    """GET /v1/account: the connected account named by Stripe-Account, or the platform."""
    if ctx.is_platform:
        return {"id": ctx.emu.platform_id, "object": "account", "type": "standard",
                "charges_enabled": True, "payouts_enabled": True, "country": "US",
                "default_currency": "usd", "details_submitted": True}
    return show(ctx, get_account(ctx, ctx.account))


@route("POST", "/v1/accounts/<aid>")
def update_account(ctx):
    """POST /v1/accounts/{id}."""
    p = ctx.params.check(*[k for k in ACCOUNT_PARAMS if k not in ("type", "country")])
    acct = get_account(ctx, ctx.args["aid"])
    before = copy.deepcopy({k: v for k, v in acct.items() if not k.startswith("_")})
    if p.has("email"):
        acct["email"] = p.str("email")
    if p.has("business_type"):
        acct["business_type"] = p.str("business_type")
    if p.has("settings"):
        acct["settings"]["payouts"]["schedule"] = _schedule(
            p, acct["settings"]["payouts"]["schedule"])
    bp = p.dict("business_profile")
    acct["business_profile"].update({k: v for k, v in bp.items()
                                     if k in acct["business_profile"]})
    apply_metadata(acct, p)
    _capabilities(p, acct)
    _external_account(ctx.emu, acct, p)
    _record_details(acct, p)
    account_updated(ctx.emu, acct, before)
    _verify_later(ctx.emu, acct)
    return show(ctx, acct)


def account_updated(emu, acct, before):
    """Send account.updated with the fields that changed."""
    previous = {k: v for k, v in before.items()
                if k not in ("external_accounts",) and acct.get(k) != v}
    emu.emit("account.updated", acct, account=acct["id"], previous=previous or None)


@route("GET", "/v1/accounts")
def list_accounts(ctx):
    """GET /v1/accounts."""
    return list_response(ctx, "account", "/v1/accounts")


@route("DELETE", "/v1/accounts/<aid>")
def delete_account(ctx):
    """DELETE /v1/accounts/{id}."""
    acct = get_account(ctx, ctx.args["aid"])
    store = ctx.emu.store
    del store.objects[acct["id"]]
    store.lists[("account", ctx.emu.platform_id)].remove(acct)
    return {"id": acct["id"], "object": "account", "deleted": True}


def onboard(emu, acct, bank_account_number=None):
    """Finish onboarding: everything enabled, requirements cleared; capability.updated for
    each capability that became active, then account.updated."""
    before = copy.deepcopy({k: v for k, v in acct.items() if not k.startswith("_")})
    acct.update(charges_enabled="card_payments" in acct["capabilities"],
                payouts_enabled=True, details_submitted=True,
                requirements=_requirements([]))
    changed = [name for name, status in acct["capabilities"].items() if status != "active"]
    acct["capabilities"] = {name: "active" for name in acct["capabilities"]}
    acct["tos_acceptance"].update(date=emu.now(), ip="127.0.0.1")
    if bank_account_number or not acct["_external_accounts"]:
        add_bank_account(emu, acct, bank_account_number)
    for name in changed:
        emu.emit("capability.updated", capability(emu, acct, name), account=acct["id"],
                 previous={"status": "inactive"})
    account_updated(emu, acct, before)
    return acct


def capability(emu, acct, name):
    """The Capability object of one of the account's capabilities (not stored)."""
    status = acct["capabilities"][name]
    due = [] if status == "active" else list(DUE)
    return {"id": name, "object": "capability", "account": acct["id"], "requested": True,
            "requested_at": acct["_requested_at"].get(name, acct["created"]),
            "requirements": _requirements(due), "future_requirements": _requirements([]),
            "status": status}


@route("POST", "/v1/accounts/<aid>/login_links")
def create_login_link(ctx):
    """POST /v1/accounts/{id}/login_links: a single-use Express Dashboard link.

    Stripe's refusals, word for word: an account without the Express Dashboard (Standard,
    Custom) and an Express account that has not completed onboarding are 400s; they are
    kept under an idempotency key like any refusal past validation.
    """
    ctx.params.check()
    acct = get_account(ctx, ctx.args["aid"])
    if acct["controller"].get("stripe_dashboard", {}).get("type") != "express":
        raise StripeError("Cannot create an edit link for the account %s, which does not have "
                          "access to the Express Dashboard." % acct["id"])
    if not acct["details_submitted"]:
        raise StripeError("Cannot create a login link for an account that has not completed "
                          "onboarding.")
    token = ctx.emu.new_id("ll")[3:]
    acct.setdefault("_login_links", []).append(token)
    return {"object": "login_link", "created": ctx.emu.now(),
            "url": "%s_emulator/express/%s/%s" % (ctx.base_url, acct["id"], token)}


@route("GET", "/_emulator/express/<aid>/<token>")
def open_login_link(ctx):
    """Where a login link points: the account's Express Dashboard, once per link."""
    with ctx.emu.lock:
        acct = ctx.emu.store.find(ctx.args["aid"])
        links = (acct or {}).get("_login_links") or []
        if ctx.args["token"] not in links:
            raise StripeError("This login link has expired or was already used.",
                              code="resource_missing", status=404)
        links.remove(ctx.args["token"])
    return {"object": "express_dashboard", "account": acct["id"]}


def check_destination_region(emu, dest, on_behalf_of):
    """A destination charge to another region needs `on_behalf_of` (the account settles)."""
    acct = emu.store.find(dest)
    if acct and on_behalf_of is None and region(acct["country"]) != region(PLATFORM_COUNTRY):
        raise StripeError(
            "Funds can't be sent to accounts located in %s because it's restricted outside "
            "of your platform's region. Use on_behalf_of to have the charge settle in the "
            "connected account's country." % acct["country"], code="transfers_not_allowed",
            param="transfer_data[destination]")


def check_transfer_region(emu, dest):
    """A transfer to another region needs an account under the recipient service agreement."""
    acct = emu.store.find(dest)
    if acct and region(acct["country"]) != region(PLATFORM_COUNTRY) and \
            acct["tos_acceptance"].get("service_agreement") != "recipient":
        raise StripeError(
            "Funds can't be sent to accounts located in %s because it's restricted outside "
            "of your platform's region." % acct["country"], code="transfers_not_allowed",
            param="destination")


@route("POST", "/v1/account_links")
def create_account_link(ctx):
    """POST /v1/account_links: a URL on the emulator that onboards and redirects."""
    p = ctx.params.check("account", "refresh_url", "return_url", "type", "collect",
                         "collection_options")
    aid = p.str("account", required=True)
    ctx.emu.store.get("account", aid, ctx.emu.platform_id, "account", "account")
    p.str("type", required=True, choices=("account_onboarding", "account_update"))
    now = ctx.emu.now()
    token = ctx.emu.new_id("al")[3:]
    link = {"object": "account_link", "created": now, "expires_at": now + 300,
            "url": "%s_emulator/onboarding/%s/%s" % (ctx.base_url, aid, token),
            "_return_url": p.str("return_url"), "_refresh_url": p.str("refresh_url"),
            "id": "al_" + token}
    ctx.emu.store.add("account_link", ctx.emu.platform_id, link)
    out = show(ctx, link)
    out.pop("id")
    return out


def require_transfers(emu, aid, param="destination"):
    """The connected account `aid`, which must be able to receive transfers."""
    acct = emu.store.get("account", aid, emu.platform_id, "destination", param)
    if acct["capabilities"].get("transfers") != "active":
        raise StripeError(
            "Your destination account needs to have at least one of the following "
            "capabilities enabled: transfers, crypto_transfers, legacy_payments",
            code="insufficient_capabilities_for_transfer", param=param)
    return acct
