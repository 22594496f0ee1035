"""`?page=&per_page=` lists returning `{"data": [...], "pagination": {...}}`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, fields, validate
from sqlalchemy import Select, func, select

from marketplace.extensions import db

MAX_PER_PAGE = 100


class PageArgsSchema(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=MAX_PER_PAGE))


class PaginationSchema(Schema):
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    total_items = fields.Integer(required=True)
    total_pages = fields.Integer(required=True)


_list_schemas: dict[str, type[Schema]] = {}


def list_schema(item_schema: type[Schema], name: str) -> type[Schema]:
    """A `{data: [item], pagination}` schema named `name` (one class per name)."""
    if name not in _list_schemas:
        _list_schemas[name] = Schema.from_dict(
            {
                "data": fields.List(fields.Nested(item_schema), required=True),
                "pagination": fields.Nested(PaginationSchema, required=True),
            },
            name=name,
        )
    return _list_schemas[name]


@dataclass
class Page:
    items: list[Any]
    page: int
    per_page: int
    total_items: int

    @property
    def total_pages(self) -> int:
        return (self.total_items + self.per_page - 1) // self.per_page

    def as_dict(self) -> dict[str, Any]:
        return {
            "data": self.items,
            "pagination": {
                "page": self.page,
                "per_page": self.per_page,
                "total_items": self.total_items,
                "total_pages": self.total_pages,
            },
        }


def paginate(stmt: Select, page: int, per_page: int) -> Page:
    """Run `stmt` for one page, plus a count over the same filters."""
    total = db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    items = list(db.session.scalars(stmt.limit(per_page).offset((page - 1) * per_page)))
    return Page(items=items, page=page, per_page=per_page, total_items=total or 0)
