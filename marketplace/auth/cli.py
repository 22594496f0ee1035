"""`flask users create-admin EMAIL --password P`."""
import click
from flask.cli import AppGroup

from marketplace.auth import service
from marketplace.errors import Conflict

users_cli = AppGroup("users", help="Manage users.")


@users_cli.command("create-admin")
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def create_admin(email: str, password: str) -> None:
    """Create a platform admin."""
    if len(password) < 12:
        raise click.BadParameter("must be at least 12 characters", param_hint="--password")
    try:
        user = service.create_user(email, password, "admin")
    except Conflict:
        raise click.ClickException(f"{email} is already registered") from None
    click.echo(f"admin {user.id} created for {user.email}")
