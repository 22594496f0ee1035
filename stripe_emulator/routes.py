"""The route table: resource modules register handlers with `@route(method, rule)`.

Every `/v1` rule must be an endpoint of the reference (the current API), or an alias of
one: its parameters and what it returns come from there.
"""
import re

from werkzeug.routing import Map, Rule

_rules = []
_handlers = {}
_references = {}

# Paths Stripe still serves that the package reaches another way: checked as these.
ALIASES = {
    "GET /v1/balance/history": "GET /v1/balance_transactions",
    "GET /v1/balance/history/{}": "GET /v1/balance_transactions/{}",
}
# Served paths the package has no method for, with their own parameter trees.
EXTRA = {
    "GET /v1/charges/{}/refunds": {
        "params": {"ending_before": "str", "expand": "arr:str", "limit": "int",
                   "starting_after": "str"},
        "returns": "list:refund"},
}


def reference_key(method, rule):
    """`POST /v1/payment_intents/{}/confirm` for a werkzeug rule with named parts."""
    return "%s %s" % (method, re.sub(r"<[^>]*>", "{}", rule))


def route(method, rule):
    """Register `func(ctx)` for METHOD on a werkzeug-style rule such as /v1/charges/<id>."""
    def wrap(func):
        endpoint = "%s %s" % (method, rule)
        _handlers[endpoint] = func
        _rules.append(Rule(rule, methods=[method], endpoint=endpoint))
        return func
    return wrap


def build_map():
    """A werkzeug Map of every registered rule."""
    from . import resources  # noqa: F401  (registers the handlers)
    return Map([r.empty() for r in _rules], strict_slashes=False, merge_slashes=False)


def handler(endpoint):
    """The function registered for an endpoint name."""
    return _handlers[endpoint]


def endpoint_reference(endpoint):
    """`{"params", "returns"}` of a /v1 endpoint name, from the reference (None for controls)."""
    if endpoint not in _references:
        from . import reference

        method, rule = endpoint.split(" ", 1)
        if not rule.startswith("/v1/"):
            _references[endpoint] = None
        else:
            key = reference_key(method, rule)
            found = EXTRA.get(key) or reference.endpoint(ALIASES.get(key, key))
            if found is None:
                raise LookupError("%s is not an endpoint of Stripe API %s"
                                  % (key, reference.api_version()))
            _references[endpoint] = found
    return _references[endpoint]
