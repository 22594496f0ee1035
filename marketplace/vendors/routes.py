"""POST /api/vendors, /api/vendors/me, onboarding and dashboard links, and sales."""
from marketplace.auth.guard import current_user
from marketplace.openapi import Blueprint
from marketplace.orders import service as orders_service
from marketplace.orders.schemas import SaleSchema
from marketplace.pagination import list_schema
from marketplace.vendors import service
from marketplace.vendors.schemas import (
    DashboardLinkSchema,
    OnboardingLinkSchema,
    SalesArgsSchema,
    VendorCreateSchema,
    VendorSchema,
)

blp = Blueprint("vendors", __name__, url_prefix="/api/vendors", description="Vendor onboarding")


@blp.route("", methods=["POST"])
@blp.auth("vendor")
@blp.arguments(VendorCreateSchema)
@blp.response(201, VendorSchema)
@blp.errors(409, 422, 429, 502, 503)
def create_vendor(body):
    """Create the caller's vendor profile and its Stripe Express account."""
    return service.create_vendor(current_user(), body["display_name"], body["country"], body.get("email"))


@blp.route("/me")
@blp.auth("vendor")
@blp.response(200, VendorSchema)
@blp.errors(404)
def my_vendor():
    """The caller's vendor profile."""
    return service.vendor_for_user(current_user())


@blp.route("/me/onboarding-link", methods=["POST"])
@blp.auth("vendor")
@blp.response(201, OnboardingLinkSchema)
@blp.errors(404, 429, 502, 503)
def onboarding_link():
    """A Stripe Account Link to complete (or resume) onboarding."""
    return service.onboarding_link(current_user())


@blp.route("/me/dashboard-link", methods=["POST"])
@blp.auth("vendor")
@blp.response(201, DashboardLinkSchema)
@blp.errors(404, 409, 429, 502, 503)
def dashboard_link():
    """A single-use Stripe Express Dashboard login link; 409 while the account cannot have one."""
    return service.dashboard_link(current_user())


@blp.route("/me/sales")
@blp.auth("vendor")
@blp.arguments(SalesArgsSchema, location="query")
@blp.response(200, list_schema(SaleSchema, "SaleList"))
@blp.errors(404)
def my_sales(args):
    """This vendor's order splits, newest first."""
    return orders_service.vendor_sales(current_user(), **args)
