"""Checks of emulator responses against the current API's object shapes.

The shapes are the `stripe` package's generated classes, as `stripe_emulator/reference/
api.json` holds them (a test keeps that file equal to the installed package). Every
object, nested hash and error a response carries must only have fields its class has, of
the kinds it declares; `seen` records which fields each object type showed, so a test can
say which fields the emulator never returns.
"""
from __future__ import annotations

from collections import defaultdict

from stripe_emulator import reference


class ShapeError(AssertionError):
    """A response does not match the current API."""


class ShapeChecker:
    """Validates responses and remembers the fields seen per object and shape."""

    def __init__(self):
        self.seen: dict[str, set[str]] = defaultdict(set)
        self.counts: dict[str, int] = defaultdict(int)

    def check_response(self, body):
        """An object, a list, a search result, or an error envelope."""
        if set(body) == {"error"}:
            self._fields(body["error"], "error", "error")
            return
        self.check_node(body, "obj:" + str(body.get("object")), "$")

    def check_node(self, value, kind, where):
        """Check `value` against a field kind of the reference (`int?`, `ref:charge`, ...)."""
        if kind.endswith("?"):
            if value is None:
                return
            kind = kind[:-1]
        if value is None:
            raise ShapeError("%s: null where the API never sends null (%s)" % (where, kind))
        head, _, rest = kind.partition(":")
        check = _SCALARS.get(kind)
        if check is not None:
            if not check(value):
                raise ShapeError("%s: %r is not %s" % (where, value, kind))
        elif head == "arr":
            if not isinstance(value, list):
                raise ShapeError("%s: %r is not an array" % (where, value))
            for i, item in enumerate(value):
                self.check_node(item, rest, "%s[%d]" % (where, i))
        elif head == "ref":
            if isinstance(value, dict):
                self._object(value, rest.split("|"), where)
            elif not isinstance(value, str):
                raise ShapeError("%s: %r is neither an id nor an object" % (where, value))
        elif head in ("list", "search_result", "search"):
            self._list(value, rest.split("|") if rest else None, where, head)
        elif head == "shape":
            self._fields(value, rest, where)
        elif head == "obj":
            self._object(value, rest.split("|"), where)
        elif kind != "any":
            raise ShapeError("%s: unknown kind %s" % (where, kind))

    def _list(self, value, items, where, head):
        keys = {"list": {"object", "data", "has_more", "url"},
                "search_result": {"object", "data", "has_more", "url", "next_page"}}.get(
            head, {"object", "data", "has_more", "url"})
        if not isinstance(value, dict) or value.get("object") not in ("list", "search_result"):
            raise ShapeError("%s: not a list object" % where)
        missing = keys - set(value)
        if missing:
            raise ShapeError("%s: list without %s" % (where, sorted(missing)))
        extra = set(value) - keys - {"total_count"}
        if extra:
            raise ShapeError("%s: list with unknown fields %s" % (where, sorted(extra)))
        for i, item in enumerate(value["data"]):
            self._object(item, items, "%s.data[%d]" % (where, i))

    def _object(self, value, names, where):
        if not isinstance(value, dict):
            raise ShapeError("%s: %r is not an object" % (where, value))
        name = value.get("object")
        if name in ("list", "search_result"):
            self._list(value, None, where, name)
            return
        if names and name not in names:
            raise ShapeError("%s: a %s where the API has %s" % (where, name, names))
        self.counts[name] += 1
        self._fields(value, name, where)
        if name == "event":
            data = value["data"]
            self.check_node(data["object"], "obj:" + str(data["object"].get("object")),
                            where + ".data.object")

    def _fields(self, value, name, where):
        table = reference.fields(name)
        if table is None:
            raise ShapeError("%s: the current API has no %s" % (where, name))
        if not isinstance(value, dict):
            raise ShapeError("%s: %r is not a hash" % (where, value))
        extra = set(value) - set(table)
        if extra:
            raise ShapeError("%s (%s): fields the current API does not have: %s"
                             % (where, name, sorted(extra)))
        self.seen[name].update(value)
        for key, item in value.items():
            self.check_node(item, table[key], "%s.%s" % (where, key))

    def never_seen(self, name):
        """Fields of `name` that no checked response has shown."""
        return set(reference.fields(name)) - self.seen.get(name, set())


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


_SCALARS = {
    "str": lambda v: isinstance(v, str),
    "enum": lambda v: isinstance(v, (str, bool)),
    "int": _is_int,
    "float": lambda v: _is_int(v) or isinstance(v, float),
    "bool": lambda v: isinstance(v, bool),
    "map": lambda v: isinstance(v, dict),
}
