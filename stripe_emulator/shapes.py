"""Every field the current API shows by default, on every object the emulator shows.

The default field set of an object is the one in Stripe's own example of it
(`reference/fixtures3.json`), nested hashes included, less the fields Stripe only shows
when expanded (`INCLUDABLE`). A field the emulator has no value for is shown as `null` when
the API allows null; fields outside that set (type-specific hashes, includable lists,
fields of products the emulator does not model) stay absent unless a resource sets them.
"""
import functools
import json

from . import reference

INCLUDABLE = {"charge": frozenset({"refunds"}),
              "checkout.session": frozenset({"line_items"}),
              "invoice": frozenset({"confirmation_secret", "payments"})}


@functools.lru_cache(maxsize=1)
def _examples():
    return json.loads((reference.PATH.parent / "fixtures3.json").read_text())["resources"]


def _plan(kind, example):
    """((field, nullable, nested kind or None, its example), ...) for one object or shape."""
    table = reference.fields(kind) or {}
    skip = INCLUDABLE.get(kind, ())
    plan = []
    for field, value in example.items():
        spec = table.get(field)
        if spec is None or field in skip:
            continue
        nullable = spec.endswith("?")
        base = spec.rstrip("?")
        nested = None
        if base.startswith("shape:") and isinstance(value, dict) and value:
            nested = base[6:]
        plan.append((field, nullable, nested, value if nested else None))
    return tuple(plan)


_PLANS = {}


def _plan_for(kind, example):
    key = (kind, id(example))
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS[key] = _plan(kind, example)
    return plan


def complete(out, name):
    """Add the default fields `out` lacks (null where allowed), nested hashes too."""
    example = _examples().get(name)
    if example is not None:
        _fill(out, name, example)
    return out


def _fill(out, kind, example):
    for field, nullable, nested, sub_example in _plan_for(kind, example):
        if field not in out:
            if nullable:
                out[field] = None
        elif nested is not None and isinstance(out[field], dict):
            _fill(out[field], nested, sub_example)
