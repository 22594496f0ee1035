"""The route table: resource modules register handlers with `@route(method, rule)`."""
from werkzeug.routing import Map, Rule

_rules = []
_handlers = {}


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
