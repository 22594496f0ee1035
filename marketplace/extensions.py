"""Bare extension instances; create_app() binds them to an app."""
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from marketplace.database import Base, render_migration_item
from marketplace.openapi import MarketplaceApi

db = SQLAlchemy(model_class=Base)
migrate = Migrate(render_item=render_migration_item)
api = MarketplaceApi()
