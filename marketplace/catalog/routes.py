"""/api/products: the public catalog and vendors' edits."""
from marketplace.auth.guard import current_user
from marketplace.catalog import service
from marketplace.catalog.schemas import (
    ProductCreateSchema,
    ProductListArgsSchema,
    ProductSchema,
    ProductUpdateSchema,
)
from marketplace.openapi import Blueprint
from marketplace.pagination import list_schema

blp = Blueprint("products", __name__, url_prefix="/api/products", description="The catalog")


@blp.route("", methods=["POST"])
@blp.auth("vendor")
@blp.arguments(ProductCreateSchema)
@blp.response(201, ProductSchema)
@blp.errors(404, 422)
def create_product(body):
    """Add a product to the caller's catalog (the vendor profile must exist)."""
    return service.create_product(current_user(), body)


@blp.route("")
@blp.arguments(ProductListArgsSchema, location="query")
@blp.response(200, list_schema(ProductSchema, "ProductList"))
def list_products(args):
    """Active products, newest first; filter `?vendor_id=`."""
    return service.list_products(**args)


@blp.route("/<product_id>")
@blp.response(200, ProductSchema)
@blp.errors(404)
def get_product(product_id):
    """One product."""
    return service.get_product(product_id)


@blp.route("/<product_id>", methods=["PATCH"])
@blp.auth("vendor")
@blp.arguments(ProductUpdateSchema(partial=True))
@blp.response(200, ProductSchema)
@blp.errors(404, 422)
def update_product(body, product_id):
    """Edit one of the caller's products; another vendor's product is a 404."""
    return service.update_product(current_user(), product_id, body)
