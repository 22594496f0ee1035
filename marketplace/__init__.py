"""The marketplace payments backend: `create_app()` is a short list of register steps."""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask.sessions import SessionInterface

from config import Config, load_config, validate_settings


def create_app(config: Config | None = None, overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the app; raises config.ConfigError naming a bad setting."""
    app = Flask(__name__, instance_relative_config=True)
    configure(app, config or load_config(), overrides)
    register_extensions(app)
    register_blueprints(app)
    register_movements()
    register_jobs()
    register_errors(app)
    register_hooks(app)
    register_commands(app)
    return app


def configure(app: Flask, config: Config, overrides: Mapping[str, Any] | None) -> None:
    app.config.from_object(config)
    app.config.update(overrides or {})
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        os.makedirs(app.instance_path, exist_ok=True)
        path = os.path.join(app.instance_path, "marketplace.db")
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{path}"
    validate_settings(app.config)
    app.json.sort_keys = False


def register_movements() -> None:
    """The kinds of money movement the engine drives, from the domains that record them."""
    from marketplace.payments.movement_kinds import register_kinds as payments_kinds
    from marketplace.payouts.runs import register_kinds as payout_kinds

    payments_kinds()
    payout_kinds()


def register_jobs() -> None:
    """Every job services name (marketplace.tasks) exists: a wrong name fails here."""
    from marketplace import tasks

    tasks.check()


def register_extensions(app: Flask) -> None:
    from marketplace.extensions import api, db, migrate
    from marketplace.fraud import register_fraud_checks
    from marketplace.ratelimit import register_rate_limits

    app.session_interface = NoCookieSessions()  # bearer tokens only: no cookie session to sign or parse
    db.init_app(app)
    with app.app_context():
        from marketplace.database import ping_when_idle

        ping_when_idle(db.engine)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(app.root_path), "migrations"))
    api.init_app(app)
    register_rate_limits(app)
    register_fraud_checks(app)
    register_proxies(app)
    _import_models()


def register_proxies(app: Flask) -> None:
    """Behind TRUSTED_PROXIES reverse proxies, the client's address, scheme and host are the
    ones those hops forwarded (Werkzeug's ProxyFix); with none, forwarded headers are ignored."""
    hops = app.config["TRUSTED_PROXIES"]
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)


class NoCookieSessions(SessionInterface):
    """The API authenticates with bearer tokens: Flask's `session` is always the null session."""

    def open_session(self, app, request):
        return None  # Flask then uses its null session, which refuses writes

    def save_session(self, app, session, response):
        pass


def _import_models() -> None:
    """Every model module, so metadata (and migrations) see every table."""
    import marketplace.audit  # noqa: F401
    import marketplace.auth.models  # noqa: F401
    import marketplace.catalog.models  # noqa: F401
    import marketplace.idempotency  # noqa: F401
    import marketplace.ledger.models  # noqa: F401
    import marketplace.orders.models  # noqa: F401
    import marketplace.outbox  # noqa: F401
    import marketplace.payments.models  # noqa: F401
    import marketplace.payouts.models  # noqa: F401
    import marketplace.reconciliation.models  # noqa: F401
    import marketplace.stripe_requests  # noqa: F401
    import marketplace.subscriptions.models  # noqa: F401
    import marketplace.vendors.models  # noqa: F401
    import marketplace.wallets.models  # noqa: F401
    import marketplace.webhooks.models  # noqa: F401


def register_blueprints(app: Flask) -> None:
    from marketplace.admin.routes import blp as admin_audit_blp
    from marketplace.auth.routes import blp as auth_blp
    from marketplace.catalog.routes import blp as products_blp
    from marketplace.exports.routes import blp as admin_exports_blp
    from marketplace.subscriptions.routes import blp as subscriptions_blp
    from marketplace.subscriptions.routes import vendor_blp as vendor_subscriptions_blp
    from marketplace.extensions import api
    from marketplace.health.routes import blp as health_blp
    from marketplace.movements.routes import blp as admin_movements_blp
    from marketplace.orders.routes import blp as orders_blp
    from marketplace.payments.routes import blp as payments_blp
    from marketplace.payouts.routes import admin_blp as admin_payouts_blp
    from marketplace.payouts.routes import vendor_blp as vendor_payouts_blp
    from marketplace.reconciliation.routes import blp as admin_reconciliation_blp
    from marketplace.reports.routes import blp as admin_reports_blp
    from marketplace.statements.routes import admin_blp as admin_statements_blp
    from marketplace.statements.routes import vendor_blp as vendor_statements_blp
    from marketplace.vendors.admin_routes import blp as admin_vendors_blp
    from marketplace.vendors.routes import blp as vendors_blp
    from marketplace.wallets.routes import blp as wallets_blp
    from marketplace.webhooks.admin_routes import blp as admin_webhooks_blp
    from marketplace.webhooks.routes import blp as webhooks_blp

    for blp in (
        health_blp, auth_blp, vendors_blp, products_blp, orders_blp, payments_blp,
        admin_vendors_blp, webhooks_blp, admin_webhooks_blp, vendor_payouts_blp, admin_payouts_blp,
        wallets_blp,
    ):
        api.register_blueprint(blp)
    for blp in (admin_reconciliation_blp, admin_reports_blp, admin_audit_blp, admin_movements_blp):
        api.register_blueprint(blp)
    for blp in (vendor_statements_blp, admin_statements_blp, admin_exports_blp):
        api.register_blueprint(blp)
    for blp in (subscriptions_blp, vendor_subscriptions_blp):
        api.register_blueprint(blp)


def register_errors(app: Flask) -> None:
    from marketplace.errors import register_error_handlers
    from marketplace.input_guard import register_input_guard

    register_error_handlers(app)
    register_input_guard(app)


def register_hooks(app: Flask) -> None:
    from marketplace import outbox
    from marketplace.observability import register_logging, register_metrics, register_request_id

    register_request_id(app)
    register_metrics(app)
    register_logging(app)

    @app.after_request
    def relay_outbox(response):
        # After the route's commit and before the answer: jobs get the committed rows.
        outbox.relay_if_committed()
        return response


def register_commands(app: Flask) -> None:
    from marketplace.auth.cli import users_cli
    from marketplace.demo.command import demo_command
    from marketplace.payouts.cli import payouts_cli
    from marketplace.reconciliation.cli import reconcile_cli
    from marketplace.webhooks.cli import stripe_cli
    from marketplace.worker import worker_command

    app.cli.add_command(users_cli)
    app.cli.add_command(worker_command)
    app.cli.add_command(demo_command)
    app.cli.add_command(stripe_cli)
    app.cli.add_command(payouts_cli)
    app.cli.add_command(reconcile_cli)
