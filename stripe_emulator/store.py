"""The in-memory object store: ids, ownership by account, ordered lists and cursors."""
import itertools
import random
import string

from .errors import StripeError, invalid, not_found

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix):
    """A Stripe-looking id such as `ch_3Nq...` (24 random characters)."""
    return prefix + "_" + "".join(random.choices(_ALPHABET, k=24))


class Store:
    """Objects by id; each owned by one account and listed per (kind, account), oldest first."""

    def __init__(self):
        self.objects = {}
        self.lists = {}
        self._seq = itertools.count()

    def add(self, kind, account, obj):
        """Store an object (a dict with `id`) owned by `account`."""
        obj["_kind"] = kind
        obj["_account"] = account
        obj["_seq"] = next(self._seq)
        self.objects[obj["id"]] = obj
        self.lists.setdefault((kind, account), []).append(obj)
        return obj

    def find(self, oid):
        """Any object by id, or None."""
        return self.objects.get(oid)

    def get(self, kind, oid, account, label=None, param="id"):
        """The object of `kind` owned by `account`, else 404 resource_missing."""
        obj = self.objects.get(oid) if isinstance(oid, str) else None
        if obj is None or obj["_kind"] != kind or obj["_account"] != account:
            raise not_found(label or kind, oid, param)
        return obj

    def all(self, kind, account):
        """Objects of `kind` owned by `account`, oldest first."""
        return self.lists.get((kind, account), [])


def paginate(items, params, url, render):
    """A Stripe list page over `items` (oldest first), newest first, with cursors."""
    limit = params.int("limit", 10)
    if limit < 1 or limit > 100:
        raise invalid("Invalid limit: must be between 1 and 100", "limit")
    after = params.str("starting_after")
    before = params.str("ending_before")
    newest = list(reversed(items))
    if after:
        idx = _index(newest, after, "starting_after")
        window = newest[idx + 1:]
        page, has_more = window[:limit], len(window) > limit
    elif before:
        idx = _index(newest, before, "ending_before")
        window = newest[:idx]
        page, has_more = window[-limit:], len(window) > limit
    else:
        page, has_more = newest[:limit], len(newest) > limit
    return {"object": "list", "data": [render(o) for o in page], "has_more": has_more,
            "url": url}


def _index(items, oid, param):
    for i, obj in enumerate(items):
        if obj["id"] == oid:
            return i
    raise StripeError("No such object: '%s'" % oid, code="resource_missing", param=param,
                      status=404)


def created_filter(params, key="created"):
    """A predicate on `created` from created / created[gt|gte|lt|lte]."""
    raw = params.raw(key)
    if raw is None:
        return lambda ts: True
    if not isinstance(raw, dict):
        exact = params.int(key)
        return lambda ts: ts == exact
    from .forms import Params
    sub = Params(raw)
    bounds = {op: sub.int(op) for op in ("gt", "gte", "lt", "lte") if sub.has(op)}
    for op in raw:
        if op not in ("gt", "gte", "lt", "lte"):
            raise invalid("Invalid %s filter: %s" % (key, op), "%s[%s]" % (key, op))

    def check(ts):
        return (("gt" not in bounds or ts > bounds["gt"])
                and ("gte" not in bounds or ts >= bounds["gte"])
                and ("lt" not in bounds or ts < bounds["lt"])
                and ("lte" not in bounds or ts <= bounds["lte"]))
    return check
