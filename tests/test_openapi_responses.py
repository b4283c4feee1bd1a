"""Every JSON route documents what it returns (issue 20 item 4).

Each service's OpenAPI is read as the app builds it; a 2xx answer served as application/json must
carry a schema, and that schema must say something: not `{}` nor a bare `object` with no properties.
FHIR routes answer application/fhir+json and document that instead; pages answer text/html.
No exceptions: every service's every JSON route has its model.
"""

from __future__ import annotations

from typing import Any

import pytest
from imaging_common.allinone import discover_services

METHODS = {"get", "post", "put", "patch", "delete"}


def _resolve(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = doc["components"]["schemas"][name]
    return schema


def _empty(schema: dict[str, Any], doc: dict[str, Any]) -> bool:
    """A schema that describes nothing: `{}`, or an object without properties or typed values."""
    schema = _resolve(schema, doc)
    if not schema:
        return True
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return all(_empty(s, doc) for s in schema[key])
    if schema.get("type") == "array":
        return "items" not in schema or _empty(schema["items"], doc)
    if schema.get("type") == "object" or ("properties" not in schema and "type" not in schema):
        extra = schema.get("additionalProperties")
        typed = isinstance(extra, dict) and not _empty(extra, doc)
        return not schema.get("properties") and not typed
    return False


def undocumented(doc: dict[str, Any]) -> list[str]:
    found = []
    for path, ops in doc.get("paths", {}).items():
        for method, op in ops.items():
            if method not in METHODS:
                continue
            for status, response in op.get("responses", {}).items():
                if not status.startswith("2"):
                    continue
                json_body = response.get("content", {}).get("application/json")
                if json_body is None:
                    continue
                if _empty(json_body.get("schema", {}), doc):
                    found.append(f"{method.upper()} {path} {status}")
    return found


@pytest.mark.parametrize("spec,create_app", discover_services(), ids=lambda v: getattr(v, "name", ""))
def test_every_json_route_has_a_response_schema(spec: Any, create_app: Any) -> None:
    assert undocumented(create_app().openapi()) == [], f"{spec.name}: JSON routes without a response schema"


def test_the_check_sees_an_undescribed_answer() -> None:
    doc = {"paths": {"/x": {"get": {"responses": {"200": {"content": {"application/json": {"schema": {}}}}}},
                            "post": {"responses": {"201": {"content": {"application/json": {"schema": {
                                "type": "object", "additionalProperties": True}}}}}},
                            "put": {"responses": {"200": {"content": {"application/json": {"schema": {
                                "$ref": "#/components/schemas/M"}}}}}},
                            "delete": {"responses": {"204": {"description": "gone"}}}}},
           "components": {"schemas": {"M": {"type": "object", "properties": {"id": {"type": "string"}}}}}}
    assert undocumented(doc) == ["GET /x 200", "POST /x 201"]
