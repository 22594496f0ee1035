"""Declarative base, id generation and column helpers shared by every model."""
from __future__ import annotations

import os
import time
from datetime import datetime, timezone

from sqlalchemy import DateTime, MetaData, String, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.types import TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


class Base(DeclarativeBase):
    """Base of every model; constraint names are stable for migrations."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC in and out, on PostgreSQL and on SQLite (which drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where UTC is required")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


# A pooled connection idle this long is pinged when it is checked out again (a PostgreSQL
# restart or a dropped link since is found before the caller's statement, which then gets a
# new connection); one busy with the requests before it is not: a ping on every checkout is
# a round trip per transaction (a fifth of a webhook's acknowledgement).
PING_AFTER_IDLE_SECONDS = 2.0


def ping_when_idle(engine) -> None:
    """On PostgreSQL, ping a connection on checkout only when it has been idle a while (in
    place of `pool_pre_ping`, which pings on every checkout); the pool hands out the most
    recently used connection first, so under load the others stay idle and the busy ones
    are not pinged. A failed ping discards the connection and the pool tries another."""
    if engine.dialect.name != "postgresql":
        return

    @event.listens_for(engine, "checkin")
    def _idle_from(dbapi_connection, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection, record, proxy):
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # noqa: BLE001 - any failure: the connection is not usable
            raise DisconnectionError(f"an idle connection failed its ping: {type(error).__name__}") from error


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (evaluated per call, never at import)."""
    return datetime.now(timezone.utc)


def new_id(prefix: str) -> str:
    """A prefixed, time-ordered, random id: `ord_01jd...` (48-bit ms time + 80 random bits)."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"


def id_column(prefix: str) -> Mapped[str]:
    """A string primary key filled with new_id(prefix)."""
    return mapped_column(String(40), primary_key=True, default=lambda: new_id(prefix))


def created_at_column() -> Mapped[datetime]:
    """A creation timestamp set per row at insert time."""
    return mapped_column(UTCDateTime(), nullable=False, default=utcnow)


def isoformat(value: datetime | None) -> str | None:
    """ISO 8601 UTC with a trailing Z, as API.md prescribes."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    # Not strftime: its %Y does not zero-pad years before 1000 ("59-01-02"), which is no ISO 8601.
    return f"{value.year:04d}-{value:%m-%dT%H:%M:%S}Z"


def render_migration_item(type_, obj, autogen_context):
    """Autogenerate writes UTCDateTime as plain sa.DateTime(timezone=True)."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def insert_new(table, conflict_on: str, **values):
    """An INSERT of one row that does nothing when a row with the same `conflict_on` exists
    (PostgreSQL's and SQLite's ON CONFLICT DO NOTHING alike): a concurrent insert wins."""
    from sqlalchemy.dialects.postgresql import insert as postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    from marketplace.extensions import db

    insert = postgresql_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
    return insert(table).values(**values).on_conflict_do_nothing(index_elements=[conflict_on])
