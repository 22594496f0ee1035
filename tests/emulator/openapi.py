"""A small validator of emulator responses against Stripe's published OpenAPI schemas."""
import json
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC_PATH = Path(os.environ.get(
    "STRIPE_OPENAPI_SPEC",
    REPO_ROOT.parent / "shared" / "stripe" / "stripe-openapi-subset.json"))

TYPES = {"string": str, "integer": int, "boolean": bool, "object": dict, "array": list,
         "number": (int, float)}


class SchemaError(AssertionError):
    """A response does not match its schema."""


class Validator:
    """Checks required fields, types, enums, $ref, anyOf and nullable, recursively."""

    def __init__(self, path=SPEC_PATH):
        spec = json.loads(Path(path).read_text())
        self.schemas = spec["components"]["schemas"]
        self.checked = {}

    def schema_for(self, obj):
        """The schema name for a JSON object by its `object` field."""
        kind = obj.get("object")
        if obj.get("deleted") is True:
            name = "deleted_" + kind
            return name if name in self.schemas else None
        return kind if kind in self.schemas else None

    def validate_response(self, body):
        """Validate a top-level response: an object, a list of objects, or an error."""
        if "error" in body and set(body) == {"error"}:
            self._check(body["error"], {"$ref": "#/components/schemas/api_errors"}, "error")
            return
        if body.get("object") == "list":
            for key in ("data", "has_more", "url"):
                if key not in body:
                    raise SchemaError("list without %s" % key)
            for i, item in enumerate(body["data"]):
                self.validate_object(item, "data[%d]" % i)
            return
        self.validate_object(body, "$")

    def validate_object(self, obj, where="$"):
        """Validate a Stripe object against the schema its `object` names."""
        name = self.schema_for(obj)
        if name is None:
            raise SchemaError("%s: no schema for object %r" % (where, obj.get("object")))
        self.checked[name] = self.checked.get(name, 0) + 1
        self._check(obj, {"$ref": "#/components/schemas/" + name}, where)
        if name == "event":
            self.validate_object(obj["data"]["object"], where + ".data.object")

    def _resolve(self, schema):
        while "$ref" in schema:
            schema = self.schemas[schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    def _check(self, value, schema, where):
        schema = self._resolve(schema)
        if value is None:
            if schema.get("nullable"):
                return
            raise SchemaError("%s: null is not allowed" % where)
        if "anyOf" in schema:
            errors = []
            for option in schema["anyOf"]:
                try:
                    self._check(value, option, where)
                    return
                except SchemaError as err:
                    errors.append(str(err))
            raise SchemaError("%s: matches no anyOf option: %s" % (where, "; ".join(errors)))
        kind = schema.get("type")
        if kind:
            expected = TYPES[kind]
            if isinstance(value, bool) and kind in ("integer", "number"):
                raise SchemaError("%s: boolean where %s expected" % (where, kind))
            if not isinstance(value, expected):
                raise SchemaError("%s: %r is not %s" % (where, value, kind))
        if "enum" in schema and value not in schema["enum"] and \
                not schema.get("x-stripeBypassValidation"):
            raise SchemaError("%s: %r not in enum %s" % (where, value, schema["enum"]))
        if isinstance(value, dict):
            for key in schema.get("required", []):
                if key not in value:
                    raise SchemaError("%s: missing required field %r" % (where, key))
            props = schema.get("properties", {})
            for key, sub in value.items():
                if key in props:
                    self._check(sub, props[key], "%s.%s" % (where, key))
                elif isinstance(schema.get("additionalProperties"), dict):
                    self._check(sub, schema["additionalProperties"], "%s.%s" % (where, key))
        elif isinstance(value, list) and "items" in schema:
            for i, item in enumerate(value):
                self._check(item, schema["items"], "%s[%d]" % (where, i))
