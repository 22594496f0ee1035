"""Bare extension instances; create_app() binds them to an app."""
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from marketplace.database import Base
from marketplace.openapi import MarketplaceApi

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
api = MarketplaceApi()
