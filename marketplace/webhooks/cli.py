"""`flask stripe sync-events --since T`: backfill missed webhooks from /v1/events.
`flask stripe webhook-endpoints URL`: subscribe the app's endpoints to the events it handles."""
from __future__ import annotations

from datetime import datetime, timezone

import click
from flask.cli import AppGroup

stripe_cli = AppGroup("stripe", help="Stripe maintenance commands.")


def _parse_since(value: str) -> datetime:
    try:
        since = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter("must be an ISO 8601 timestamp, e.g. 2026-11-21T10:00:00Z") from None
    return since if since.tzinfo else since.replace(tzinfo=timezone.utc)


@stripe_cli.command("sync-events")
@click.option("--since", required=True, help="ISO 8601 timestamp (UTC when no zone is given).")
def sync_events_command(since: str) -> None:
    """Store and process the events since T that no webhook delivered."""
    from marketplace.webhooks.sync import sync_events

    start = _parse_since(since)
    click.echo(f"syncing events since {start.isoformat()} ...")
    totals = sync_events(start, progress=click.echo)
    click.echo(
        f"done: {totals['accounts']} account(s), {totals['seen']} event(s) listed, "
        f"{totals['stored']} missed event(s) stored and queued"
    )


@stripe_cli.command("webhook-endpoints")
@click.argument("url")
def webhook_endpoints_command(url: str) -> None:
    """Make or update the platform's and the Connect webhook endpoint at URL, subscribed to
    the event types the app handles; prints the signing secret of each one made now."""
    from marketplace.webhooks.service import subscribe

    for endpoint in subscribe(url):
        if endpoint["created"]:
            variable = "STRIPE_WEBHOOK_SECRET" if endpoint["role"] == "platform" else "STRIPE_CONNECT_WEBHOOK_SECRET"
            click.echo(f"{endpoint['role']}: {endpoint['id']} created; set {variable}={endpoint['secret']}")
        else:
            click.echo(f"{endpoint['role']}: {endpoint['id']} updated (its secret is unchanged)")
