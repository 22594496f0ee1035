"""One phase of a service, one transaction.

A service is written as phases: read and decide (one transaction), call Stripe with no
transaction open, record the answer (another). `@atomic` makes a function one such phase:
what it did is committed when it returns and rolled back when it raises, so the function
itself neither commits nor rolls back, and an early `return` or `raise` needs no cleanup.
"""
from __future__ import annotations

import functools
from typing import Callable, TypeVar

from marketplace.extensions import db

F = TypeVar("F", bound=Callable)


def atomic(fn: F) -> F:
    """Run `fn` as one transaction: committed on return, rolled back on any exception."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            result = fn(*args, **kwargs)
        except BaseException:
            db.session.rollback()
            raise
        db.session.commit()
        return result

    return run  # type: ignore[return-value]
