"""Decoding of Stripe's bracketed form encoding (`a[b][0][c]=1`, `expand[]=x`) and typed params."""
import re
from urllib.parse import parse_qsl

from .errors import StripeError, invalid, missing

_KEY = re.compile(r"([^\[\]]+)|\[([^\[\]]*)\]")


def _split(key):
    """`a[b][]` -> ['a', 'b', '']."""
    head, _, rest = key.partition("[")
    parts = [head]
    if rest:
        parts.extend(m.group(2) if m.group(2) is not None else m.group(1)
                     for m in _KEY.finditer("[" + rest))
    return parts


def _listify(node):
    if isinstance(node, dict):
        for k, v in node.items():
            node[k] = _listify(v)
        if node and all(k.isdigit() for k in node):
            return [node[k] for k in sorted(node, key=int)]
    elif isinstance(node, list):
        return [_listify(v) for v in node]
    return node


def decode_pairs(pairs):
    """Nest (key, value) pairs into dicts and lists."""
    root = {}
    for key, value in pairs:
        parts = _split(key)
        node = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":
                # `a[]` appends; represent as the next numeric index
                part = str(len(node))
            if last:
                node[part] = value
            else:
                nxt = node.get(part)
                if not isinstance(nxt, dict):
                    nxt = node[part] = {}
                node = nxt
    return _listify(root)


def decode(body):
    """Decode an application/x-www-form-urlencoded string."""
    return decode_pairs(parse_qsl(body, keep_blank_values=True))


class Params:
    """Typed access to decoded parameters."""

    def __init__(self, data):
        self.data = data if isinstance(data, dict) else {}

    def check(self, *supported):
        """Refuse a parameter Stripe takes here but the emulator does not model (`expand`
        is always supported): a clear 400 rather than an effect silently missing. Names
        Stripe does not take at all were already refused as `parameter_unknown`."""
        ok = set(supported) | {"expand"}
        for key in self.data:
            if key not in ok:
                raise StripeError(
                    "The Stripe emulator does not support the parameter %s on this "
                    "endpoint (Stripe does)." % key, code="emulator_unsupported_parameter",
                    param=key, saved=False)
        return self

    def has(self, key):
        """True when the parameter was sent."""
        return key in self.data

    def raw(self, key, default=None):
        """The value as sent."""
        return self.data.get(key, default)

    def str(self, key, default=None, required=False, choices=None):
        """A string parameter."""
        if key not in self.data:
            if required:
                raise missing(key)
            return default
        value = self.data[key]
        if not isinstance(value, str):
            raise invalid("Invalid string: %r" % (value,), key)
        if choices is not None and value not in choices:
            raise invalid("Invalid %s: must be one of %s" % (key, ", ".join(choices)), key)
        return value

    def int(self, key, default=None, required=False, minimum=None):
        """An integer parameter (never a float)."""
        if key not in self.data or self.data[key] == "":
            if required:
                raise missing(key)
            return default
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise invalid("Invalid integer: %r" % (value,), key)
        try:
            number = int(value)
        except ValueError:
            raise invalid("Invalid integer: %s" % value, key) from None
        if minimum is not None and number < minimum:
            raise invalid("Invalid integer: %s must be at least %d" % (key, minimum), key)
        return number

    def bool(self, key, default=None):
        """A boolean parameter, `true`/`false` as the client sends it."""
        if key not in self.data:
            return default
        value = self.data[key]
        if isinstance(value, bool):
            return value
        if value in ("true", "1"):
            return True
        if value in ("false", "0"):
            return False
        raise invalid("Invalid boolean: %s" % value, key)

    def dict(self, key):
        """A nested hash parameter, or an empty dict."""
        value = self.data.get(key, {})
        if value == "":
            return {}
        if not isinstance(value, dict):
            raise invalid("Invalid hash", key)
        return value

    def sub(self, key):
        """Params for a nested hash."""
        return Params(self.dict(key))

    def metadata(self, key="metadata"):
        """A metadata hash as str -> str; empty values delete keys on update."""
        value = self.data.get(key, {})
        if value == "":
            return None
        if not isinstance(value, dict):
            raise invalid("Invalid hash", key)
        return {str(k): ("" if v is None else str(v)) for k, v in value.items()}

    def list(self, key):
        """An array parameter."""
        value = self.data.get(key, [])
        if value == "":
            return []
        if isinstance(value, str):
            return [value]
        if isinstance(value, dict):
            return list(value.values())
        return list(value)
