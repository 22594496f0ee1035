"""Stripe's search query language (`status:'succeeded' AND metadata['order_id']:'42'`).

Clauses joined by `AND` or by `OR` (not both); each `field:value` (exact), `field~value`
(substring), `field>value` / `<` / `>=` / `<=` (numbers), `-` in front negates, `null`
matches a missing value; metadata as `metadata['key']`. Results are newest first, in pages
whose `next_page` token is passed back as `page`.
"""
import re

from ..errors import StripeError

_CLAUSE = re.compile(
    r"\s*(-)?([a-z_]+)(?:\[['\"]([^'\"]+)['\"]\])?\s*(:|~|>=|<=|>|<)\s*"
    r"(?:'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"|(null)|(-?\d+))\s*")


def _invalid(query, why):
    return StripeError("Invalid search query: %s (%s)." % (query, why), param="query",
                       saved=False)


def parse(query, fields):
    """(joiner, [(negate, field, key, op, value)]) of a query over the searchable fields."""
    clauses, joiner, pos = [], None, 0
    while pos < len(query):
        found = _CLAUSE.match(query, pos)
        if not found:
            raise _invalid(query, "cannot parse at position %d" % pos)
        neg, field, key, op, single, double, null, number = found.groups()
        if field not in fields:
            raise _invalid(query, "the field %s is not searchable" % field)
        value = None if null else int(number) if number is not None else (
            single if single is not None else double)
        clauses.append((bool(neg), field, key, op, value))
        pos = found.end()
        word = re.match(r"(AND|OR)\s+", query[pos:])
        if word:
            if joiner not in (None, word.group(1)):
                raise _invalid(query, "AND and OR cannot be combined")
            joiner = word.group(1)
            pos += word.end()
    if not clauses:
        raise _invalid(query, "empty query")
    return joiner or "AND", clauses


def _value(obj, field, key):
    value = obj.get(field)
    return (value or {}).get(key) if key is not None else value


def _test(obj, clause):
    neg, field, key, op, want = clause
    have = _value(obj, field, key)
    if op == ":":
        ok = have == want if want is None or not isinstance(have, (int, str)) \
            else str(have) == str(want)
    elif op == "~":
        ok = isinstance(have, str) and str(want) in have
    else:
        ok = isinstance(have, int) and isinstance(want, int) and {
            ">": have > want, "<": have < want, ">=": have >= want, "<=": have <= want}[op]
    return ok != neg


def search_response(ctx, kind, url, fields):
    """The search_result page of `kind` objects of the account matching `query`."""
    p = ctx.params
    query = p.str("query", required=True)
    joiner, clauses = parse(query, fields)
    limit = p.int("limit", 10)
    if limit < 1 or limit > 100:
        raise StripeError("Invalid limit: must be between 1 and 100", param="limit",
                          saved=False)
    combine = all if joiner == "AND" else any
    hits = [o for o in reversed(ctx.emu.store.all(kind, ctx.account))
            if combine(_test(o, c) for c in clauses)]
    start = 0
    if p.has("page"):
        token = p.str("page")
        if not token.isdigit():
            raise StripeError("Invalid page token.", param="page", saved=False)
        start = int(token)
    page = hits[start:start + limit]
    more = start + limit < len(hits)
    return {"object": "search_result", "data": [ctx.emu.render(o) for o in page],
            "has_more": more, "next_page": str(start + limit) if more else None,
            "url": url}
