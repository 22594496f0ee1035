"""`flask demo`."""
import os
import tempfile

import click
from flask import current_app
from flask.cli import with_appcontext

from marketplace.demo import tour


@click.command("demo")
@click.option("--use-configured-database", is_flag=True,
              help="Run against DATABASE_URL instead of a fresh temporary SQLite database.")
@with_appcontext
def demo_command(use_configured_database: bool) -> None:
    """Run the end-to-end tour against an in-process Stripe emulator."""
    from flask_migrate import upgrade
    from stripe_emulator import start_server

    from marketplace import create_app

    base_config = current_app.config
    workdir = tempfile.TemporaryDirectory(prefix="marketplace-demo-")
    # The emulator forgets everything when it stops, so by default the tour's data lives
    # only as long as the tour: a fresh database each run.
    database = (base_config["SQLALCHEMY_DATABASE_URI"] if use_configured_database
                else f"sqlite:///{os.path.join(workdir.name, 'demo.db')}")

    def app_factory(stripe_url: str):
        app = create_app(overrides={
            "SQLALCHEMY_DATABASE_URI": database,
            "REDIS_URL": base_config["REDIS_URL"],
            "STRIPE_API_BASE": stripe_url,
            "LOG_LEVEL": "ERROR",  # the tour prints its own progress; expected declines are not news
            # Stripe's clock is advanced in the emulator, the app's is not: no hold in the tour.
            "PAYOUT_HOLD_DAYS": 0,
        })
        with app.app_context():
            upgrade()
        return app

    def emulator_factory(webhook_url: str):
        return start_server(host="127.0.0.1", port=0, webhook_url=webhook_url,
                            webhook_secret=base_config["STRIPE_WEBHOOK_SECRET"])

    with workdir:
        tour.run(app_factory, emulator_factory)
