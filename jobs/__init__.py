"""RQ entry points: thin functions that push an app context and call a service.

Decorate each with `@job`. Under `flask worker` (and inline execution) an app
context already exists; under a bare `rq worker` one app is built per process.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

from flask import Flask, has_app_context

_worker_app: Flask | None = None


def _app() -> Flask:
    global _worker_app
    if _worker_app is None:
        from marketplace import create_app

        _worker_app = create_app()
    return _worker_app


def job(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run `fn` inside an app context, then relay any outbox rows it committed."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        if has_app_context():
            return _run(fn, args, kwargs)
        with _app().app_context():
            return _run(fn, args, kwargs)

    return run


def _run(fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    from marketplace import outbox
    from marketplace.extensions import db

    try:
        result = fn(*args, **kwargs)
    except BaseException:
        db.session.rollback()
        raise
    outbox.relay_if_committed()
    message_id = _outbox_message()
    if message_id:
        outbox.mark_done(message_id)
    return result


def _outbox_message() -> str | None:
    """The outbox row this RQ job was handed off for (its job id is `outbox-<row id>`)."""
    from rq import get_current_job

    job = get_current_job()
    if job is not None and job.id.startswith("outbox-"):
        return job.id[len("outbox-"):]
    return None
