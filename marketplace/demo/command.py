"""`flask demo`."""
import click
from flask import current_app
from flask.cli import with_appcontext

from marketplace.demo import tour


@click.command("demo")
@with_appcontext
def demo_command() -> None:
    """Run the end-to-end tour against an in-process Stripe emulator."""
    from stripe_emulator import start_server

    from marketplace import create_app

    base_config = current_app.config

    def app_factory(stripe_url: str):
        overrides = {key: base_config[key] for key in ("SQLALCHEMY_DATABASE_URI", "REDIS_URL")}
        overrides["STRIPE_API_BASE"] = stripe_url
        overrides["LOG_LEVEL"] = "WARNING"  # the tour prints its own progress
        return create_app(overrides=overrides)

    def emulator_factory(webhook_url: str):
        return start_server(host="127.0.0.1", port=0, webhook_url=webhook_url,
                            webhook_secret=base_config["STRIPE_WEBHOOK_SECRET"])

    tour.run(app_factory, emulator_factory)
