"""GET /api/admin/vendors and PATCH /api/admin/vendors/{id}."""
from marketplace.openapi import Blueprint
from marketplace.pagination import list_schema
from marketplace.vendors import service
from marketplace.vendors.schemas import (
    AdminVendorListArgsSchema,
    AdminVendorUpdateSchema,
    VendorSchema,
)

blp = Blueprint(
    "admin_vendors", __name__, url_prefix="/api/admin/vendors", description="Vendor administration"
)


@blp.route("")
@blp.auth("admin")
@blp.arguments(AdminVendorListArgsSchema, location="query")
@blp.response(200, list_schema(VendorSchema, "VendorList"))
def list_vendors(args):
    """Every vendor, newest first; filter `?status=`."""
    return service.list_vendors(**args)


@blp.route("/<vendor_id>", methods=["PATCH"])
@blp.auth("admin")
@blp.arguments(AdminVendorUpdateSchema)
@blp.response(200, VendorSchema)
@blp.errors(404)
def update_vendor(body, vendor_id):
    """Set a vendor's fee policy (new orders only) or suspend / reinstate it."""
    return service.admin_update_vendor(vendor_id, **body)
