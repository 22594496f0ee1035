"""On SQLite the payout-run lock is the process's, per database: a run on another database
(the demo beside a test, two tests' apps) holds no lock of this one's."""
from marketplace.extensions import db
from marketplace.payouts.locking import is_busy, run_lock
from tests.conftest import make_app


def _migrated_app(path):
    app = make_app(f"sqlite:///{path}")
    with app.app_context():
        db.create_all()
    return app


def test_a_run_on_another_sqlite_database_does_not_hold_this_ones_lock(tmp_path):
    first, second = _migrated_app(tmp_path / "a.db"), _migrated_app(tmp_path / "b.db")
    with first.app_context(), run_lock() as held:
        assert held
        with second.app_context():
            assert not is_busy()
            with run_lock() as also:
                assert also  # another database: its own run may go
        with first.app_context():
            assert is_busy()
            with run_lock() as again:
                assert not again  # the same database: one run at a time
