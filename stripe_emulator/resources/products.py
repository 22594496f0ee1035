"""Products and Prices: create, retrieve, update, list.

A Price's amount, currency and interval never change: a price change is a new Price (the
old one deactivated with `active=false`, which keeps it on the subscriptions that use it).
Prices are `per_unit` with a `unit_amount`, one-time or `recurring` (`day`, `week`, `month`,
`year`, `interval_count` up to three years, `usage_type=licensed`); tiers, custom amounts,
currency options, meters and trials are not modelled (400 `emulator_unsupported_parameter`).
"""
from .. import money
from ..errors import StripeError, invalid, missing, not_found
from ..forms import Params
from ..routes import route
from .common import apply_metadata, currency, list_response, show

PRODUCT_PARAMS = ("id", "name", "active", "description", "metadata", "images", "url",
                  "unit_label", "statement_descriptor", "shippable", "type",
                  "default_price_data")
PRODUCT_UPDATE_PARAMS = ("name", "active", "description", "metadata", "images", "url",
                         "unit_label", "statement_descriptor", "shippable", "default_price")
PRICE_PARAMS = ("product", "product_data", "currency", "unit_amount", "recurring", "active",
                "metadata", "nickname", "lookup_key", "transfer_lookup_key", "tax_behavior",
                "billing_scheme")
PRICE_UPDATE_PARAMS = ("active", "metadata", "nickname", "lookup_key", "transfer_lookup_key",
                       "tax_behavior")
INTERVALS = ("day", "week", "month", "year")
# The longest billing interval Stripe takes: three years.
MAX_INTERVAL_COUNT = {"day": 1095, "week": 156, "month": 36, "year": 3}
TAX_BEHAVIORS = ("exclusive", "inclusive", "unspecified")


def unsupported(name):
    """400 for a parameter Stripe takes here that the emulator does not model."""
    return StripeError("The Stripe emulator does not support the parameter %s on this "
                       "endpoint (Stripe does)." % name, code="emulator_unsupported_parameter",
                       param=name, saved=False)


def supported(params, prefix, *names):
    """Refuse what Stripe takes under the hash `prefix` but the emulator does not model."""
    for key in params.data:
        if key not in names:
            raise unsupported("%s[%s]" % (prefix, key))
    return params


# products ------------------------------------------------------------------------------

def new_product(emu, account, p, prefix=""):
    """Store a Product from checked parameters (`product_data` when `prefix` is given)."""
    name = p.str("name")
    if not name:
        raise missing("%s[name]" % prefix if prefix else "name")
    pid = p.str("id") or emu.new_id("prod")
    if emu.store.find(pid) is not None:
        raise StripeError("Product already exists.", code="resource_already_exists",
                          param="%s[id]" % prefix if prefix else "id")
    now = emu.now()
    product = {
        "id": pid, "object": "product", "active": p.bool("active", True), "created": now,
        "default_price": None, "description": p.str("description"),
        "images": p.list("images"), "livemode": False, "marketing_features": [],
        "metadata": p.metadata() or {}, "name": name, "package_dimensions": None,
        "shippable": p.bool("shippable"),
        "statement_descriptor": p.str("statement_descriptor"), "tax_code": None,
        "type": p.str("type", "service", choices=("good", "service")),
        "unit_label": p.str("unit_label"), "updated": now, "url": p.str("url"),
    }
    emu.store.add("product", account, product)
    emu.emit("product.created", product, account=account)
    return product


def _named(emu, account, kind, oid, param):
    """The account's object of `kind` a parameter names, else Stripe's 400."""
    found = emu.store.find(oid) if isinstance(oid, str) else None
    if found is None or found["_kind"] != kind or found["_account"] != account:
        raise StripeError("No such %s: '%s'" % (kind, oid), code="resource_missing", param=param)
    return found


def find_product(emu, account, pid, param="product"):
    """The account's Product a parameter names, else Stripe's 400."""
    return _named(emu, account, "product", pid, param)


@route("POST", "/v1/products")
def create_product(ctx):
    """POST /v1/products (`default_price_data`: its default Price made with it)."""
    p = ctx.params.check(*PRODUCT_PARAMS)
    emu = ctx.emu
    data = None
    if p.has("default_price_data"):
        data = supported(p.sub("default_price_data"), "default_price_data", "currency",
                         "unit_amount", "recurring", "metadata", "tax_behavior")
        _price_terms(data, "default_price_data[")  # checked before anything is made
    product = new_product(emu, ctx.account, p)
    if data is not None:
        price = new_price(emu, ctx.account, product, data, "default_price_data[")
        product["default_price"] = price["id"]
    return show(ctx, product)


def _product(ctx):
    product = ctx.emu.store.find(ctx.args["pid"])
    if product is None or product["_kind"] != "product" or product["_account"] != ctx.account:
        raise not_found("product", ctx.args["pid"])
    return product


@route("GET", "/v1/products/<pid>")
def retrieve_product(ctx):
    """GET /v1/products/{id}."""
    return show(ctx, _product(ctx))


@route("POST", "/v1/products/<pid>")
def update_product(ctx):
    """POST /v1/products/{id}: name, description, active, metadata, default_price, ...;
    `product.updated` with what changed."""
    p = ctx.params.check(*PRODUCT_UPDATE_PARAMS)
    emu = ctx.emu
    product = _product(ctx)
    previous = {}
    before = apply_metadata(product, p)
    if before is not None:
        previous["metadata"] = before
    if p.has("default_price"):
        wanted = p.str("default_price") or None
        if wanted:
            price = emu.store.find(wanted)
            if price is None or price["_kind"] != "price" or \
                    price["_account"] != ctx.account:
                raise StripeError("No such price: '%s'" % wanted, code="resource_missing",
                                  param="default_price")
            if price["product"] != product["id"]:
                raise invalid("The price %s does not belong to this product." % wanted,
                              "default_price")
            if not price["active"]:
                raise invalid("The default price must be active.", "default_price")
        if wanted != product["default_price"]:
            previous["default_price"] = product["default_price"]
            product["default_price"] = wanted
    for key in ("name", "description", "url", "unit_label", "statement_descriptor"):
        if p.has(key):
            value = p.str(key) or None
            if key == "name" and not value:
                raise invalid("A product's name cannot be empty.", "name")
            if value != product[key]:
                previous[key] = product[key]
                product[key] = value
    for key in ("active", "shippable"):
        if p.has(key) and p.bool(key) != product[key]:
            previous[key] = product[key]
            product[key] = p.bool(key)
    if p.has("images") and p.list("images") != product["images"]:
        previous["images"] = product["images"]
        product["images"] = p.list("images")
    if previous:
        product["updated"] = emu.now()
        emu.emit("product.updated", product, account=ctx.account, previous=previous)
    return show(ctx, product)


@route("GET", "/v1/products")
def list_products(ctx):
    """GET /v1/products with active / ids / shippable / type / url filters."""
    p = ctx.params
    active = p.bool("active") if p.has("active") else None
    shippable = p.bool("shippable") if p.has("shippable") else None
    ids = set(p.list("ids")) if p.has("ids") else None
    kind, url = p.str("type"), p.str("url")
    return list_response(
        ctx, "product", "/v1/products",
        lambda o: active in (None, o["active"]) and shippable in (None, o["shippable"])
        and (ids is None or o["id"] in ids) and kind in (None, o["type"])
        and url in (None, o["url"]),
        extra=("active", "ids", "shippable", "type", "url"))


# prices --------------------------------------------------------------------------------

def _price_terms(p, prefix=""):
    """(currency, unit_amount, recurring hash or None) of checked price parameters."""
    def name(key):
        return prefix + key + ("]" if prefix else "")
    cur = currency(p)
    if not p.has("unit_amount"):
        raise missing(name("unit_amount"))
    unit = p.int("unit_amount", minimum=0)
    if unit > money.MAXIMUM:
        raise StripeError("Amount must be no more than %d" % money.MAXIMUM,
                          code="amount_too_large", param=name("unit_amount"), saved=False)
    if money.exponent(cur) == 3 and unit % 10 != 0:
        raise invalid("Amounts in %s must be divisible by 10 (the last digit must be 0)."
                      % cur.upper(), name("unit_amount"), code="invalid_amount")
    recurring = None
    if p.has("recurring"):
        where = name("recurring")
        r = supported(p.sub("recurring"), where, "interval", "interval_count", "usage_type")
        interval = r.str("interval", required=True)
        if interval not in INTERVALS:
            raise invalid("Invalid %s[interval]: must be one of %s" % (where, ", ".join(
                INTERVALS)), "%s[interval]" % where)
        count = r.int("interval_count", 1)
        if count < 1:
            raise invalid("Invalid integer: %s[interval_count] must be at least 1" % where,
                          "%s[interval_count]" % where)
        if count > MAX_INTERVAL_COUNT[interval]:
            raise invalid("Invalid %s[interval_count]: the maximum billing interval is three "
                          "years (3 years, 36 months, 156 weeks or 1095 days)." % where,
                          "%s[interval_count]" % where)
        if r.str("usage_type", "licensed") != "licensed":  # metered prices need meters
            raise unsupported("%s[usage_type]" % where)
        recurring = {"interval": interval, "interval_count": count, "meter": None,
                     "trial_period_days": None, "usage_type": "licensed"}
    return cur, unit, recurring


def _lookup_key(emu, account, p, price_id=None):
    """The lookup key asked for, free among the account's active prices (or moved to this
    price with `transfer_lookup_key`)."""
    key = p.str("lookup_key")
    if not key:
        return None
    for other in emu.store.all("price", account):
        if other["lookup_key"] == key and other["id"] != price_id:
            if not p.bool("transfer_lookup_key", False):
                raise invalid("A price (`%s`) already uses that lookup key." % other["id"],
                              "lookup_key")
            other["lookup_key"] = None
            emu.emit("price.updated", other, account=account,
                     previous={"lookup_key": key})
    return key


def new_price(emu, account, product, p, prefix="", active=None):
    """Store a Price of `product` from checked parameters (`price_data` and the like given
    `prefix`); `active` overrides the parameter (inline prices are inactive)."""
    cur, unit, recurring = _price_terms(p, prefix)
    tax = p.str("tax_behavior", "unspecified", choices=TAX_BEHAVIORS)
    price = {
        "id": emu.new_id("price"), "object": "price",
        "active": p.bool("active", True) if active is None else active,
        "billing_scheme": "per_unit", "created": emu.now(), "currency": cur,
        "custom_unit_amount": None, "livemode": False,
        "lookup_key": _lookup_key(emu, account, p) if p.has("lookup_key") else None,
        "metadata": p.metadata() or {}, "nickname": p.str("nickname"),
        "product": product["id"], "recurring": recurring, "tax_behavior": tax,
        "tiers_mode": None, "transform_quantity": None,
        "type": "recurring" if recurring else "one_time", "unit_amount": unit,
        "unit_amount_decimal": str(unit),
    }
    emu.store.add("price", account, price)
    emu.emit("price.created", price, account=account)
    return price


def find_price(emu, account, pid, param="price"):
    """The account's Price a parameter names, else Stripe's 400."""
    return _named(emu, account, "price", pid, param)


@route("POST", "/v1/prices")
def create_price(ctx):
    """POST /v1/prices with `product` or `product_data`."""
    p = ctx.params.check(*PRICE_PARAMS)
    emu = ctx.emu
    if p.str("billing_scheme", "per_unit", choices=("per_unit", "tiered")) != "per_unit":
        raise unsupported("billing_scheme")
    if p.has("product") and p.has("product_data"):
        raise invalid("You may only specify one of these parameters: product, product_data.",
                      "product_data")
    _price_terms(p)
    if p.has("product"):
        product = find_product(emu, ctx.account, p.str("product"))
    elif p.has("product_data"):
        data = supported(p.sub("product_data"), "product_data", "name", "active", "id",
                         "metadata", "statement_descriptor", "unit_label")
        product = new_product(emu, ctx.account, data, prefix="product_data")
    else:
        raise missing("product")
    return show(ctx, new_price(emu, ctx.account, product, p))


def _price(ctx):
    price = ctx.emu.store.find(ctx.args["pid"])
    if price is None or price["_kind"] != "price" or price["_account"] != ctx.account:
        raise not_found("price", ctx.args["pid"])
    return price


@route("GET", "/v1/prices/<pid>")
def retrieve_price(ctx):
    """GET /v1/prices/{id}."""
    return show(ctx, _price(ctx))


@route("POST", "/v1/prices/<pid>")
def update_price(ctx):
    """POST /v1/prices/{id}: active, metadata, nickname, lookup_key, tax_behavior (while
    `unspecified`); the amount never changes. `price.updated` with what changed."""
    p = ctx.params.check(*PRICE_UPDATE_PARAMS)
    emu = ctx.emu
    price = _price(ctx)
    previous = {}
    before = apply_metadata(price, p)
    if before is not None:
        previous["metadata"] = before
    if p.has("active") and p.bool("active") != price["active"]:
        previous["active"] = price["active"]
        price["active"] = p.bool("active")
    if p.has("nickname") and (p.str("nickname") or None) != price["nickname"]:
        previous["nickname"] = price["nickname"]
        price["nickname"] = p.str("nickname") or None
    if p.has("lookup_key"):
        key = _lookup_key(emu, ctx.account, p, price["id"])
        if key != price["lookup_key"]:
            previous["lookup_key"] = price["lookup_key"]
            price["lookup_key"] = key
    if p.has("tax_behavior"):
        tax = p.str("tax_behavior", choices=TAX_BEHAVIORS)
        if tax != price["tax_behavior"]:
            if price["tax_behavior"] != "unspecified":
                raise invalid("tax_behavior cannot be changed once it is set to `exclusive` "
                              "or `inclusive`.", "tax_behavior")
            previous["tax_behavior"] = price["tax_behavior"]
            price["tax_behavior"] = tax
    if previous:
        emu.emit("price.updated", price, account=ctx.account, previous=previous)
    return show(ctx, price)


@route("GET", "/v1/prices")
def list_prices(ctx):
    """GET /v1/prices with product / active / currency / type / recurring / lookup_keys
    filters."""
    p = ctx.params
    active = p.bool("active") if p.has("active") else None
    product, cur, kind = p.str("product"), p.str("currency"), p.str("type")
    keys = set(p.list("lookup_keys")) if p.has("lookup_keys") else None
    recurring = p.sub("recurring")
    supported(recurring, "recurring", "interval", "usage_type")
    interval, usage = recurring.str("interval"), recurring.str("usage_type")

    def match(o):
        rec = o["recurring"] or {}
        return (active in (None, o["active"]) and product in (None, o["product"])
                and cur in (None, o["currency"]) and kind in (None, o["type"])
                and (keys is None or o["lookup_key"] in keys)
                and (not recurring.data or bool(rec))
                and interval in (None, rec.get("interval"))
                and usage in (None, rec.get("usage_type")))
    return list_response(ctx, "price", "/v1/prices", match,
                         extra=("active", "product", "currency", "type", "lookup_keys",
                                "recurring"))


def inline_price(emu, account, raw, where):
    """A `price_data` hash (subscription items): an inactive Price of an existing product."""
    data = supported(Params(raw), where, "currency", "product", "recurring", "unit_amount",
                     "tax_behavior")
    product = find_product(emu, account, data.str("product", required=True),
                           "%s[product]" % where)
    if not data.has("recurring"):
        raise missing("%s[recurring]" % where)
    return new_price(emu, account, product, data, where + "[", active=False)
