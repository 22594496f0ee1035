"""The tour: every step goes through the HTTP API, and the API through the real stripe package."""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import click
from flask import Flask

from marketplace.auth import service as auth_service
from marketplace.demo.runtime import ApiClient, Progress, ServedApp

PASSWORD = "demo-password-not-secret"


@dataclass
class Actor:
    email: str
    role: str
    token: str = ""
    user_id: str = ""


@dataclass
class Tour:
    """State carried from step to step, and what the final report prints."""

    api: ApiClient
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    admin: Actor | None = None
    vendors: list[Actor] = field(default_factory=list)
    shoppers: list[Actor] = field(default_factory=list)

    def email(self, name: str) -> str:
        return f"{name}+{self.run_id}@demo.example"


def register_actors(tour: Tour) -> None:
    """Three vendors and two shoppers register and take tokens over HTTP."""
    for name, role, bucket in [("vera", "vendor", tour.vendors), ("victor", "vendor", tour.vendors),
                               ("valentina", "vendor", tour.vendors), ("sam", "shopper", tour.shoppers),
                               ("sofia", "shopper", tour.shoppers)]:
        actor = Actor(tour.email(name), role)
        body = tour.api.call("POST", "/api/auth/register", json={"email": actor.email, "password": PASSWORD,
                                                                  "role": role}, expect=201)
        actor.user_id = body["id"]
        actor.token = login(tour, actor.email)
        bucket.append(actor)


def login(tour: Tour, email: str) -> str:
    return tour.api.call("POST", "/api/auth/tokens", json={"email": email, "password": PASSWORD}, expect=201)["token"]


def create_admin(tour: Tour, app: Flask) -> None:
    """Admins are made on the command line; the tour does what `flask users create-admin` does."""
    with app.app_context():
        user_id = auth_service.create_user(tour.email("admin"), PASSWORD, "admin").id
    tour.admin = Actor(tour.email("admin"), "admin", login(tour, tour.email("admin")), user_id)


def report(tour: Tour) -> None:
    click.echo("")
    click.echo(f"Demo run {tour.run_id}")
    click.echo(f"  admin:    {tour.admin.email}")
    for actor in tour.vendors + tour.shoppers:
        click.echo(f"  {actor.role:<8}  {actor.email}")


def run(app_factory, emulator_factory) -> None:
    """Start the emulator and the API, then walk through the steps with progress shown."""
    progress = Progress(total=4)
    with progress.step("Starting the Stripe emulator"):
        emulator = emulator_factory()
    try:
        with progress.step("Starting the API over HTTP against the emulator"):
            app = app_factory(emulator.url)
            served = ServedApp(app).start()
        tour = Tour(api=ApiClient(served.url))
        try:
            with progress.step("Checking readiness"):
                tour.api.call("GET", "/readyz", expect=200)
            with progress.step("Registering an admin, three vendors and two shoppers"):
                create_admin(tour, app)
                register_actors(tour)
            report(tour)
        finally:
            served.stop()
    finally:
        emulator.stop()
