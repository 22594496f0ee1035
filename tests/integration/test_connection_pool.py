"""Pooled PostgreSQL connections: one idle a while is pinged before it is handed out (a
dropped one is replaced, the caller never sees it); a busy one is not pinged again."""
import psycopg
import pytest
from sqlalchemy import text

from marketplace import database
from marketplace.extensions import db


def _backend_pid() -> int:
    pid = db.session.scalar(text("SELECT pg_backend_pid()"))
    db.session.commit()  # back to the pool
    return pid


@pytest.fixture
def pings(app, pg_only, monkeypatch):
    """How many times the app's engine pinged a connection."""
    dialect, counted = db.engine.dialect, []
    real = dialect.do_ping

    def counting(dbapi_connection):
        counted.append(1)
        return real(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counting)
    return counted


def test_a_connection_dropped_while_idle_is_replaced_before_it_is_used(app, pings, monkeypatch):
    first = _backend_pid()
    url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as other:  # not through the pool
        assert other.execute("SELECT pg_terminate_backend(%s)", (first,)).fetchone()[0] is True
    monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 0.0)  # every connection idle long enough
    second = _backend_pid()  # no OperationalError: the dead one failed its ping and was replaced
    assert second != first and pings


def test_a_connection_in_use_is_not_pinged_on_every_checkout(app, pings):
    first = _backend_pid()
    for _ in range(20):
        assert _backend_pid() == first  # the same connection, the most recently used
    assert pings == []
