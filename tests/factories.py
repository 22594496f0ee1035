"""factory-boy factories bound to the app's session."""
import factory
from factory.alchemy import SQLAlchemyModelFactory
from flask import current_app
from werkzeug.security import generate_password_hash

from marketplace.auth.models import User
from marketplace.catalog.models import Product
from marketplace.vendors.models import Vendor
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


class VendorFactory(BaseFactory):
    """A vendor whose (pretend) Stripe account is fully onboarded, so it can sell."""

    class Meta:
        model = Vendor
        exclude = ("user",)

    user = factory.SubFactory(UserFactory, role="vendor")
    user_id = factory.SelfAttribute("user.id")
    display_name = factory.Sequence(lambda n: f"Vendor {n}")
    country = "US"
    email = factory.SelfAttribute("user.email")
    stripe_account_id = factory.Sequence(lambda n: f"acct_test{n:010d}")
    status = "active"
    charges_enabled = True
    payouts_enabled = True
    details_submitted = True
    requirements_due = factory.LazyFunction(list)


class ProductFactory(BaseFactory):
    class Meta:
        model = Product
        exclude = ("vendor",)

    vendor = factory.SubFactory(VendorFactory)
    vendor_id = factory.SelfAttribute("vendor.id")
    name = factory.Sequence(lambda n: f"Product {n}")
    description = ""
    price = 1000
    currency = "usd"
    stock = 100
    active = True
