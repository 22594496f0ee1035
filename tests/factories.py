"""factory-boy factories bound to the app's session."""
import factory
from factory.alchemy import SQLAlchemyModelFactory
from flask import current_app
from werkzeug.security import generate_password_hash

from marketplace.auth.models import User
from marketplace.extensions import db


class BaseFactory(SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_factory = lambda: db.session  # noqa: E731
        sqlalchemy_session_persistence = "commit"


class UserFactory(BaseFactory):
    class Meta:
        model = User
        exclude = ("password",)

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    role = "shopper"
    password = "correct horse battery"
    password_hash = factory.LazyAttribute(
        lambda o: generate_password_hash(o.password, method=current_app.config["PASSWORD_HASH_METHOD"])
    )
