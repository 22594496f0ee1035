"""The OpenAPI document as a contract: Schemathesis fuzzes every operation in-process, as each role.

For every operation of /openapi.json and every role (anonymous, shopper, vendor, admin) a
bounded, deterministic Hypothesis run (derandomized, so the same cases every run) sends
schema-conforming and schema-violating requests through the WSGI app, which talks to the
in-process Stripe emulator. Each response must:

- not be a 5xx (`not_a_server_error`);
- carry a status the operation documents (`status_code_conformance`), and more strictly
  one it lists explicitly: smorest adds a catch-all `default` error response to every
  operation, which alone would make any status "documented" (`explicit_status_documented`);
- have the documented content type (`content_type_conformance`);
- match the documented schema for that status (`response_schema_conformance`).

Real objects (a vendor with a product, a pending and a paid order, a payout run and a
reconciliation run) are seeded first, and path parameters point at them in part of the cases.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core import NOT_SET
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from marketplace.extensions import db
from tests.conftest import Auth, _assert_ledger_balanced, _clean, make_app

ROLES = ("anonymous", "shopper", "vendor", "admin")

# Cases per (role, operation). Anonymous calls of authenticated operations all end at the
# bearer check, so fewer cases say as much there.
MAX_EXAMPLES = {"anonymous": 10, "shopper": 25, "vendor": 25, "admin": 25}

# The document is static: one throwaway app (no database access) serves it at collection.
SCHEMA = schemathesis.openapi.from_wsgi("/openapi.json", make_app("sqlite://"))

# Nothing is excluded: /docs (Swagger UI HTML) and /openapi.json itself are not operations
# of the document, and /metrics' text exposition passes the content-type check as documented.
OPERATIONS = {
    f"{operation.method.upper()} {operation.path}": operation
    for operation in (result.ok() for result in SCHEMA.get_all_operations())
}


@schemathesis.check
def explicit_status_documented(ctx, response, case):
    """The status is listed by the operation itself, not only covered by `default`."""
    responses = case.operation.definition.raw.get("responses", {})
    status = str(response.status_code)
    if status not in responses and f"{status[0]}XX" not in responses:
        raise AssertionError(
            f"{case.operation.label} answered {status}, which it does not document "
            f"(documented: {', '.join(sorted(r for r in responses if r != 'default'))})"
        )


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    explicit_status_documented,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def contract(migrated, emulator):
    """An app on the emulator with seeded objects and a token per role; cleaned afterwards."""
    requests.post(f"{emulator.url}/_emulator/reset", timeout=10).raise_for_status()
    # Rate limits would turn most later cases into 429s; their own tests cover them.
    app = make_app(migrated, STRIPE_API_BASE=emulator.url, RATELIMIT_ENABLED=False)
    with app.app_context():
        client = app.test_client()
        auth = Auth(client)
        headers = {"anonymous": {}}
        for role in ROLES[1:]:
            headers[role] = auth.user(role, email=f"contract-{role}@example.com")[1]
        ids = _seed(client, emulator, headers)
        db.session.remove()
    # No app context while fuzzing: each request gets its own, and its own session, as in production.
    yield app, headers, ids
    with app.app_context():
        _assert_ledger_balanced()
        db.session.remove()
        _clean(db.engine)
        db.engine.dispose()


def _ok(response, *statuses):
    assert response.status_code in statuses, (response.status_code, response.get_json())
    return response.get_json()


def _seed(client, emulator, headers) -> dict[str, list[str]]:
    """Real objects through the API, so path parameters can name them."""
    vendor = _ok(client.post("/api/vendors", json={"display_name": "Contract Goods", "country": "US"},
                             headers=headers["vendor"]), 201)
    requests.post(f"{emulator.url}/_emulator/accounts/{vendor['stripe_account_id']}/onboard",
                  timeout=10).raise_for_status()
    from marketplace.vendors.models import Vendor

    row = db.session.get(Vendor, vendor["id"])
    row.status, row.charges_enabled, row.payouts_enabled = "active", True, True
    db.session.commit()
    product = _ok(client.post("/api/products", json={"name": "Mug", "price": 1200, "currency": "usd", "stock": 500},
                              headers=headers["vendor"]), 201)
    items = {"items": [{"product_id": product["id"], "quantity": 1}]}
    pending = _ok(client.post("/api/orders", json=items, headers=headers["shopper"]), 201)
    paid = _ok(client.post("/api/orders", json=items, headers=headers["shopper"]), 201)
    _ok(client.post(f"/api/orders/{paid['id']}/payment-intent", headers=headers["shopper"]), 201)
    _ok(client.post(f"/api/orders/{paid['id']}/confirm", json={"payment_method": "pm_card_visa"},
                    headers=headers["shopper"]), 200)
    payout_run = _ok(client.post("/api/admin/payout-runs", json={"dry_run": True}, headers=headers["admin"]), 202)
    recon_run = _ok(client.post("/api/admin/reconciliation-runs",
                                json={"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"},
                                headers=headers["admin"]), 202)
    return {
        "product_id": [product["id"]],
        "vendor_id": [vendor["id"]],
        "order_id": [pending["id"], paid["id"]],
        "run_id": [payout_run["id"], recon_run["id"]],
        "month": [f"{datetime.now(timezone.utc):%Y-%m}"],  # the seeded sale's statement
    }


# Bodies the document cannot fully describe (supported currencies are configuration, product
# ids must exist), so that part of the cases gets past validation to the real work.
_PAYMENT_METHODS = ["pm_card_visa", "pm_card_chargeDeclined", "pm_card_authenticationRequired", "pm_card_amex"]
_REASONS = ["requested_by_customer", "duplicate", "fraudulent"]
VALID_BODIES = {
    "POST /api/products": lambda ids: st.fixed_dictionaries({
        "name": st.text(min_size=1, max_size=40), "price": st.integers(1, 10**6).map(lambda n: n * 10),
        "currency": st.sampled_from(["usd", "eur", "jpy", "kwd"]), "stock": st.integers(0, 1000),
    }),
    "POST /api/orders": lambda ids: st.fixed_dictionaries({"items": st.lists(
        st.fixed_dictionaries({"product_id": st.sampled_from(ids["product_id"]), "quantity": st.integers(1, 3)}),
        min_size=1, max_size=2, unique_by=lambda item: item["product_id"],
    )}),
    "POST /api/orders/{order_id}/confirm": lambda ids: st.fixed_dictionaries(
        {"payment_method": st.sampled_from(_PAYMENT_METHODS)}),
    "POST /api/orders/{order_id}/refunds": lambda ids: st.fixed_dictionaries(
        {"reason": st.sampled_from(_REASONS)}, optional={"amount": st.integers(1, 2000)}),
    "POST /api/admin/reconciliation-runs": lambda ids: st.sampled_from([
        {"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"},
        {"from": "2020-02-28T00:00:00Z", "to": "2020-03-01T00:00:00Z"},
    ]),
}


def _strategy(operation, label, ids):
    """Valid and invalid cases, and valid ones that name seeded objects and carry working bodies."""
    strategies = [
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    ]
    names = [p.name for p in operation.path_parameters]
    real_paths = (st.fixed_dictionaries({name: st.sampled_from(ids[name]) for name in names})
                  if names and all(name in ids for name in names) else st.just(None))
    bodies = VALID_BODIES[label](ids) if label in VALID_BODIES else st.just(NOT_SET)
    if names or label in VALID_BODIES:
        strategies.append(st.tuples(real_paths, bodies).flatmap(
            lambda pair: operation.as_strategy(
                generation_mode=GenerationMode.POSITIVE, path_parameters=pair[0], body=pair[1])
        ))
    return st.one_of(strategies)


@pytest.mark.parametrize("label", list(OPERATIONS))
@pytest.mark.parametrize("role", ROLES)
def test_operation_honours_its_documented_contract(contract, role, label):
    app, headers, ids = contract
    operation = OPERATIONS[label]

    # derandomize: the seed comes from the test itself, so every run (and CI) sends the same
    # cases; no example database, no deadline (the emulator is real HTTP).
    @settings(
        max_examples=MAX_EXAMPLES[role],
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=_strategy(operation, label, ids))
    def run(case):
        if case.headers:
            case.headers.pop("Authorization", None)
        case.call_and_validate(app=app, headers=headers[role], checks=CHECKS)

    run()



# --- Hostile inputs ------------------------------------------------------------------------
# Schemathesis' own cases are schema-shaped. These are built from them and are what a parser
# or a database cannot take: strings with lone surrogates and NULs (keys and values), JSON
# nested far past the recursion limit, integers thousands of digits long, NaN, and bodies past
# the size limit; queries with NULs and huge integers. Every operation, every role: nothing
# answers 5xx, every answer is a status the operation lists, in the envelope.

_HUGE = "9" * 5000


def _poisoned(value, mark: str, keys: bool = False):
    """The value with `mark` put into every string value (with `keys`: into every key instead)."""
    if isinstance(value, str):
        return value if keys else value[:1] + mark + value[1:]
    if isinstance(value, dict):
        return {(k[:1] + mark + k[1:] if keys else k): _poisoned(v, mark, keys) for k, v in value.items()}
    if isinstance(value, list):
        return [_poisoned(v, mark, keys) for v in value]
    return value


def _huge_integers(value):
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return "__HUGE__"
    if isinstance(value, dict):
        return {k: _huge_integers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_huge_integers(v) for v in value]
    return value


def _body_of(case):
    return case.body if case.body is not NOT_SET else {"value": "text", "number": 1}


def _with_raw_field(case, raw: str) -> str:
    """The case's body (an object) with one more field whose JSON text is `raw`."""
    body = _body_of(case)
    body = {**body, "hostile": "@"} if isinstance(body, dict) else {"hostile": "@"}
    return json.dumps(body).replace('"@"', raw)


HOSTILE_BODIES = {
    "lone_surrogates": lambda case: json.dumps(_poisoned(_body_of(case), "\ud800")),
    "lone_surrogates_in_keys": lambda case: json.dumps(_poisoned(_body_of(case), "\udfff", keys=True)),
    "nul_characters": lambda case: json.dumps(_poisoned(_body_of(case), "\x00")),
    "nul_characters_in_keys": lambda case: json.dumps(_poisoned(_body_of(case), "\x00", keys=True)),
    "deep_nesting": lambda case: "[" * 20_000 + "]" * 20_000,
    "deep_nesting_in_a_field": lambda case: _with_raw_field(case, '{"a":' * 3000 + "1" + "}" * 3000),
    "huge_integers": lambda case: json.dumps(_huge_integers(_body_of(case))).replace('"__HUGE__"', _HUGE),
    "huge_integer_field": lambda case: _with_raw_field(case, _HUGE),
    "nan": lambda case: _with_raw_field(case, "NaN"),
}
HOSTILE_QUERIES = {
    "nul_characters": lambda name: {name: "a\x00b"},
    "huge_integers": lambda name: {name: _HUGE},
}


def _answer_checks(operation, response, kind):
    label = f"{operation.method.upper()} {operation.path} ({kind})"
    assert response.status_code < 500, f"{label}: {response.status_code} {response.get_data(as_text=True)[:300]}"
    documented = operation.definition.raw.get("responses", {})
    assert str(response.status_code) in documented, (
        f"{label} answered {response.status_code}, which it does not document ({', '.join(sorted(documented))})")
    if response.status_code >= 400:
        assert response.mimetype == "application/json", label
        assert set(response.get_json()["error"]) == {"code", "message", "details"}, label


class _Unread:
    def read(self, *args):
        raise AssertionError("an oversized body was read")

    readline = read


def _send(app, headers, case, raw=None, query=None, oversized=False):
    environ = {"CONTENT_LENGTH": str(app.config["WEBHOOK_MAX_BODY_BYTES"] + 1), "wsgi.input": _Unread()} if oversized else {}
    with app.test_client() as client:
        return client.open(case.formatted_path, method=case.method.upper(), query_string=query,
                           data=None if oversized else raw, headers={**headers, "Content-Type": "application/json"},
                           environ_overrides=environ)


def _queries(operation) -> list[str]:
    return [p["name"] for p in operation.definition.raw.get("parameters", []) if p.get("in") == "query"]


# The operations that take a body or a query (the others have no input of this kind).
TAKING_INPUT = [label for label, operation in OPERATIONS.items()
                if "requestBody" in operation.definition.raw or _queries(operation)]


@pytest.mark.parametrize("label", TAKING_INPUT)
@pytest.mark.parametrize("role", ROLES)
def test_operation_answers_hostile_input_with_a_documented_4xx(contract, role, label):
    app, headers, ids = contract
    operation = OPERATIONS[label]
    has_body = "requestBody" in operation.definition.raw
    queries = _queries(operation)
    names = [p.name for p in operation.path_parameters]
    real_paths = (st.fixed_dictionaries({name: st.sampled_from(ids[name]) for name in names})
                  if names and all(name in ids for name in names) else st.just(None))
    bodies = VALID_BODIES[label](ids) if label in VALID_BODIES else st.just(NOT_SET)
    cases = st.tuples(real_paths, bodies).flatmap(lambda pair: operation.as_strategy(
        generation_mode=GenerationMode.POSITIVE, path_parameters=pair[0], body=pair[1]))

    @settings(max_examples=3, derandomize=True, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=cases)
    def run(case):
        if has_body:
            for kind, build in HOSTILE_BODIES.items():
                _answer_checks(operation, _send(app, headers[role], case, raw=build(case)), kind)
            _answer_checks(operation, _send(app, headers[role], case, oversized=True), "oversized")
        for name in queries:
            for kind, build in HOSTILE_QUERIES.items():
                _answer_checks(operation, _send(app, headers[role], case, query=build(name)), f"{kind} in {name}")

    run()
