"""Request checks every endpoint shares, driven by the reference of the current API.

Parameters are checked against the endpoint's parameter tree (`reference/api.json`, from
the `stripe` package's typed params): an unknown name anywhere, GET queries included, is
400 `parameter_unknown`; a required one left out is `parameter_missing`; a value of the
wrong shape is `parameter_invalid_*`. `expand[]` paths must name expandable fields, lists
through `data.`, at most four levels. Metadata and free-text limits are Stripe's.
"""
from . import reference
from .errors import StripeError, invalid, missing, unknown
from .shapes import INCLUDABLE

MAX_EXPAND_DEPTH = 4
METADATA_MAX_KEYS = 50
METADATA_KEY_LENGTH = 40
METADATA_VALUE_LENGTH = 500
# Free-text limits (maxLength) of Stripe's specification; a longer value is a 400.
TEXT_LIMITS = {"description": 5000, "statement_descriptor": 22,
               "statement_descriptor_suffix": 22, "receipt_email": 800,
               "transfer_group": 5000, "return_url": 5000, "email": 800}
# Where the specification sets a parameter's limit apart: PaymentIntents' description.
ENDPOINT_LIMITS = {"/v1/payment_intents": {"description": 1000}}


# Parameters the current API removed, refused with their own error code rather than as
# unknown (API 2026-09-30.endive: payment_method_types is no longer writable).
REMOVED = {"payment_method_types": (
    ("/v1/payment_intents", "/v1/setup_intents", "/v1/checkout/sessions"),
    "payment_method_types_no_longer_supported",
    "The payment_method_types parameter is no longer supported on this API version. Use "
    "automatic_payment_methods, allowed_payment_method_types or "
    "excluded_payment_method_types instead.")}


def check_removed(path, data):
    """400 for a parameter this API version removed from the endpoint."""
    for name, (prefixes, code, message) in REMOVED.items():
        if name in data and path.startswith(prefixes):
            raise StripeError(message, code=code, param=name, saved=False)


def limits_for(path):
    """The text limits of the endpoint serving `path`."""
    for prefix, special in ENDPOINT_LIMITS.items():
        if path.startswith(prefix):
            return dict(TEXT_LIMITS, **special)
    return TEXT_LIMITS


def _spec(tree, key):
    """(kind, required) of parameter `key` in a tree, or (None, False)."""
    if key in tree:
        return tree[key], False
    if "!" + key in tree:
        return tree["!" + key], True
    return None, False


_MARKS = ("~", "|str")  # in a hash's tree: "" unsets it; a string may stand for it


def check_params(tree, data, prefix="", limits=TEXT_LIMITS):
    """Raise the error Stripe gives for the first parameter that does not fit `tree`."""
    strange = [key for key in data if _spec(tree, key)[0] is None]
    if strange:
        names = ["%s[%s]" % (prefix, key) if prefix else key for key in strange]
        raise unknown(names[0]) if len(names) == 1 else StripeError(
            "Received unknown parameters: %s" % ", ".join(names), code="parameter_unknown",
            param=names[0], saved=False)
    for key, value in data.items():
        name = "%s[%s]" % (prefix, key) if prefix else key
        _check_value(_spec(tree, key)[0], value, name, key, limits)
    for key, kind in tree.items():
        if key.startswith("!") and key[1:] not in data:
            raise missing("%s[%s]" % (prefix, key[1:]) if prefix else key[1:])
        if isinstance(kind, str) and kind.startswith("!") and key not in data:
            raise missing("%s[%s]" % (prefix, key) if prefix else key)


def _check_value(kind, value, name, key, limits):
    if isinstance(kind, dict):
        if value == "" and kind.get("~") or isinstance(value, str) and kind.get("|str"):
            return
        if not isinstance(value, dict):
            raise invalid("Invalid object", name, code="parameter_invalid_object")
        check_params({k: v for k, v in kind.items() if k not in _MARKS}, value, name, limits)
        return
    if isinstance(kind, list):
        if value == "" and kind[0].get("~"):
            return
        items = value if isinstance(value, list) else None
        if items is None:
            raise invalid("Invalid array", name)
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise invalid("Invalid object", "%s[%d]" % (name, i))
            check_params({k: v for k, v in kind[0].items() if k not in _MARKS}, item,
                         "%s[%d]" % (name, i), limits)
        return
    base = kind.lstrip("!")
    emptyable = base.startswith("~")
    base = base.lstrip("~")
    if value == "" and emptyable:
        return
    if base == "map":
        _check_map(value, name, key)
    elif base.startswith("arr:"):
        if isinstance(value, dict) or not isinstance(value, (list, str)):
            raise invalid("Invalid array", name)
    elif base == "int":
        _check_int(value, name)
    elif base == "bool":
        if value not in ("true", "false", True, False):
            raise invalid("Invalid boolean: %s" % (value,), name)
    elif base.startswith("enum:"):
        choices = base[5:].split("|")
        if value not in choices:
            raise invalid("Invalid %s: must be one of %s" % (name, ", ".join(choices)), name)
    elif base == "str":
        if not isinstance(value, str):
            raise invalid("Invalid string: %s" % (value,), name)
        limit = limits.get(key) if not name.endswith("]") else None
        if limit is not None and len(value) > limit:
            raise invalid("Invalid string: %s...; must be at most %d characters"
                          % (value[:5], limit), name, code="parameter_invalid_string_length")


def _check_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise invalid("Invalid integer: %s" % (value,), name, code="parameter_invalid_integer")
    try:
        int(value)
    except ValueError:
        raise invalid("Invalid integer: %s" % value, name,
                      code="parameter_invalid_integer") from None


def _check_map(value, name, key):
    if not isinstance(value, dict):
        raise invalid("Invalid object", name, code="parameter_invalid_object")
    if key != "metadata":
        return
    if len(value) > METADATA_MAX_KEYS:
        raise invalid("Metadata can have up to %d keys, but you've set %d. Email us at "
                      "support+metadata@stripe.com for more information."
                      % (METADATA_MAX_KEYS, len(value)), name)
    for k, v in value.items():
        if len(k) > METADATA_KEY_LENGTH:
            raise invalid("Invalid key: %s must be a string under %d characters"
                          % (k, METADATA_KEY_LENGTH), name)
        if isinstance(v, (dict, list)) or len(str(v)) > METADATA_VALUE_LENGTH:
            raise invalid("Invalid val: %s must be a string under %d characters"
                          % (v, METADATA_VALUE_LENGTH), name)


# expand ---------------------------------------------------------------------------------

def not_expandable(path):
    """400: the path names a field that cannot be expanded."""
    return StripeError("This property cannot be expanded (%s)." % path, param="expand",
                       saved=False)


def check_expand(paths, returns):
    """Every path must lead through the object `returns` names to expandable fields."""
    for path in paths:
        if not isinstance(path, str) or not path:
            raise invalid("Invalid array", "expand")
        parts = path.split(".")
        if len(parts) > MAX_EXPAND_DEPTH:
            raise StripeError(
                "You cannot expand more than %d levels of a property. Property: %s"
                % (MAX_EXPAND_DEPTH, path), code="property_expansion_max_depth",
                param="expand", saved=False)
        _walk(parts, [returns] if returns else [], path)


def _targets(kind):
    """(what kind of node a field is, the object or shape names it leads to)."""
    kind = kind.rstrip("?")
    if kind.startswith("arr:"):
        return _targets(kind[4:])
    for prefix, node in (("ref:", "ref"), ("list:", "list"), ("shape:", "shape"),
                         ("obj:", "obj")):
        if kind.startswith(prefix):
            return node, kind[len(prefix):].split("|")
    if kind == "list":
        return "list", []
    return "scalar", []


def _walk(parts, kinds, path):
    """Follow `parts` from the objects or shapes in `kinds`; the last part must expand."""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        next_kinds, expandable, known = [], False, False
        for kind in kinds:
            if kind.startswith(("list:", "search_result:")):
                if part == "data":
                    known = True
                    next_kinds.append(kind.split(":", 1)[1])
                continue
            table = reference.fields(kind)
            if not table or part not in table:
                continue
            known = True
            node, names = _targets(table[part])
            if node in ("ref", "list") or part in INCLUDABLE.get(kind, ()):
                expandable = True  # an id, a list, or a field shown only when expanded
            next_kinds.extend("list:" + n for n in names) if node == "list" else \
                next_kinds.extend(names)
        if not known or (last and not expandable):
            error = not_expandable(path if last and known else ".".join(parts[:i + 1]))
            if i == 0 and kinds and kinds[0].startswith("list:"):
                error.message += " You may want to try expanding 'data.%s' instead." % path
            raise error
        kinds = next_kinds
