"""Fixture chain: database -> app -> client -> auth.

PostgreSQL and Redis come from TEST_DATABASE_URL and TEST_REDIS_URL (CI sets both,
and MARKETPLACE_REQUIRE_SERVICES=1 so that a missing service fails the run instead
of skipping). Without them the suite runs on a temporary SQLite file and inline jobs.

Under pytest-xdist (`make test` runs `-n auto`), each worker has a database and a Redis
database of its own: `<TEST_DATABASE_URL's database>_gw<n>` (created, then dropped) and
TEST_REDIS_URL's database number + n (mod 16); the tests of one worker never see another's.
"""
from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from config import TestingConfig, normalize_database_url
from marketplace import create_app
from marketplace.extensions import db

REQUIRE_SERVICES = os.environ.get("MARKETPLACE_REQUIRE_SERVICES") == "1"


def _service_missing(what: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is required (MARKETPLACE_REQUIRE_SERVICES=1) but not configured")
    pytest.skip(f"{what} not configured")


def _xdist_worker() -> int | None:
    """This process's pytest-xdist worker number (gw<n>), None when not run by xdist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(worker[2:]) if worker.startswith("gw") else None


def _worker_database(url: str, worker: int):
    """A fresh database for this worker beside TEST_DATABASE_URL's; yields its URL, then drops it."""
    base = sa.engine.make_url(url)
    name = f"{base.database}_gw{worker}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        url, worker = normalize_database_url(url), _xdist_worker()
        if worker is None or not url.startswith("postgresql"):
            yield url
        else:
            yield from _worker_database(url, worker)
        return
    if REQUIRE_SERVICES:
        pytest.exit("TEST_DATABASE_URL must be set when MARKETPLACE_REQUIRE_SERVICES=1", 2)
    yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


@pytest.fixture(scope="session")
def is_postgres(database_url) -> bool:
    return database_url.startswith("postgresql")


def make_app(database_url: str, **overrides):
    """A testing app on `database_url`; jobs inline unless REDIS_URL is overridden."""
    config = TestingConfig({})
    settings = {"SQLALCHEMY_DATABASE_URI": database_url, "REDIS_URL": None}
    settings.update(overrides)
    return create_app(config, settings)


@pytest.fixture(scope="session")
def migrated(database_url) -> str:
    """Create the schema once per run, through the migrations only."""
    from flask_migrate import upgrade

    app = make_app(database_url)
    with app.app_context():
        engine = db.engine
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.execute(sa.text("DROP SCHEMA public CASCADE"))
                conn.execute(sa.text("CREATE SCHEMA public"))
        else:
            db.drop_all()
            with engine.begin() as conn:
                conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
        upgrade()
        engine.dispose()
    return database_url


def _clean(engine) -> None:
    """Empty every table, children first. DELETE, not TRUNCATE: a test leaves few rows, and
    on PostgreSQL one batch of DELETEs takes 3 ms where TRUNCATE of the 24 tables took 110 ms
    (no table has a sequence to restart: ids are generated)."""
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("; ".join(f"DELETE FROM {name}" for name in tables)))
        else:
            for name in tables:
                conn.execute(sa.text(f"DELETE FROM {name}"))


def _assert_ledger_balanced() -> None:
    """Every entry any test created balances per currency (checked before each clean-up)."""
    from marketplace.ledger.service import unbalanced_entries

    db.session.rollback()
    assert unbalanced_entries() == [], "unbalanced ledger entries"


# Fixtures that ask for the app with something more: requesting one adds that need.
_NEEDS = {"stripe_app": "emulator", "redis_app": "redis"}


@pytest.fixture
def app(request, migrated):
    """The one app of a test, on a clean database. What else it needs, a module or test says
    with `pytest.mark.needs("emulator", "redis")` (or by asking for `stripe_app` /
    `redis_app`): the Stripe emulator over HTTP (reset, STRIPE_API_BASE pointing at it), and
    RQ on the test Redis (flushed before and after). Settings read when the app is made come
    from `pytest.mark.settings(NAME=value)`. Whatever it needs, the teardown checks
    that every ledger entry the test made balances, then empties the database."""
    marker = request.node.get_closest_marker("needs")
    needs = set(marker.args if marker else ()) | {n for f, n in _NEEDS.items() if f in request.fixturenames}
    overrides, redis = {}, None
    if "emulator" in needs:
        import requests

        emulator = request.getfixturevalue("emulator")
        requests.post(f"{emulator.url}/_emulator/reset", timeout=10).raise_for_status()
        emulator.__dict__.pop("delivered_events", None)
        overrides["STRIPE_API_BASE"] = emulator.url
    if "redis" in needs:
        from redis import Redis

        url = request.getfixturevalue("redis_url")
        redis = Redis.from_url(url)
        redis.flushdb()
        overrides["REDIS_URL"] = url
    settings = request.node.get_closest_marker("settings")
    overrides.update(settings.kwargs if settings else {})
    app = make_app(migrated, **overrides)
    with app.app_context():
        yield app
        _assert_ledger_balanced()
        db.session.remove()
        _clean(db.engine)
        db.engine.dispose()
    if redis is not None:
        redis.flushdb()
        redis.close()


@pytest.fixture
def stripe_app(app, emulator):
    """The app, talking to the emulator."""
    assert app.config["STRIPE_API_BASE"] == emulator.url, (
        "the app was made before stripe_app was asked for: mark the test needs('emulator')")
    return app


@pytest.fixture
def redis_app(app, redis_url):
    """The app, its jobs going through RQ on a real Redis."""
    assert app.config["REDIS_URL"] == redis_url, (
        "the app was made before redis_app was asked for: mark the test needs('redis')")
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        _service_missing("TEST_REDIS_URL")
    worker = _xdist_worker()
    if worker:
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(url)
        base = int(parts.path.strip("/") or 0)
        url = urlunsplit(parts._replace(path=f"/{(base + worker) % 16}"))
    return url


@pytest.fixture
def pg_only(is_postgres):
    if not is_postgres:
        _service_missing("TEST_DATABASE_URL (PostgreSQL)")


class Auth:
    """Makes users of each role and the headers that carry their tokens."""

    def __init__(self, client):
        self.client = client
        self._n = 0

    def user(self, role: str = "shopper", email: str | None = None, password: str = "correct horse battery"):
        from tests.factories import UserFactory
        from marketplace.auth import service

        self._n += 1
        email = email or f"{role}{self._n}@example.com"
        user = UserFactory(email=email, role=role, password=password)
        token = service.issue_token(email, password).token
        return user, {"Authorization": f"Bearer {token}"}

    def headers(self, role: str = "shopper") -> dict[str, str]:
        return self.user(role)[1]


@pytest.fixture
def auth(client) -> Auth:
    return Auth(client)


@pytest.fixture(scope="session")
def emulator():
    """The Stripe emulator over real HTTP, one server per run."""
    from stripe_emulator import start_server

    server = start_server(host="127.0.0.1", port=0)
    yield server
    server.stop()


@pytest.fixture
def shopper(auth) -> dict[str, str]:
    """A shopper's headers."""
    return auth.headers("shopper")


@pytest.fixture
def admin(auth) -> dict[str, str]:
    """An admin's headers."""
    return auth.headers("admin")


def pytest_collection_modifyitems(items):
    """Tests marked `long` first: under xdist one worker starts on them at once while the
    others share the rest, instead of a long test starting late and ending the run alone."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)
