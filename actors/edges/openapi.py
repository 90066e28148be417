"""The OpenAPI 3.1 document of an HTTP edge, generated from its route table and pydantic models.

pydantic's JSON Schema is 2020-12, the dialect OpenAPI 3.1 uses, so model schemas go into
``components.schemas`` as they are. Every operation documents its answer (the route's ``response``
model), and one response per refusal it can give, each with the JSON error body ``Error``: the
edge's own refusals (invalid when it validates a body or parameters, forbidden for the allowlist,
too_large with a body, unavailable, timeout) and the route's ``refuses``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter

from actors.edges.routes import HTTP_STATUS, Answer, Route
from protocols.errors import RefusalKind

__all__ = ["ErrorBody", "openapi_document", "refusals_of"]

REF_TEMPLATE = "#/components/schemas/{model}"


class ErrorBody(BaseModel):
    """Every error answer of an HTTP edge: RFC 9457 problem details (``type``, ``title``,
    ``status``, ``detail``) and ptr's own members: the reason, its refusal kind, the fields at
    fault; more context (``max_bytes``, ``client``, ``allowed``...) may follow."""

    model_config = ConfigDict(extra="allow", title="Error")

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    error: str
    refusal: RefusalKind | None = None
    fields: list[dict[str, Any]] = []


def refusals_of(route: Route) -> list[RefusalKind]:
    """Every refusal kind ``route`` may answer with, in status order."""
    kinds = {RefusalKind.FORBIDDEN, RefusalKind.UNAVAILABLE, *route.refuses}
    if route.body is not None or route.params is not None:
        kinds.add(RefusalKind.INVALID)
    if route.body is not None or route.body_media_type:
        kinds.add(RefusalKind.TOO_LARGE)
    if route.answer is Answer.REPLY:
        kinds.add(RefusalKind.TIMEOUT)
    if route.path_params:
        kinds.add(RefusalKind.NOT_FOUND)
    return sorted(kinds, key=lambda kind: HTTP_STATUS[kind])


class _Schemas:
    """Collects model schemas into ``components.schemas``, one entry per model name."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def of(self, model: Any) -> dict[str, Any]:
        schema = TypeAdapter(model).json_schema(ref_template=REF_TEMPLATE)
        for name, definition in schema.pop("$defs", {}).items():
            self.components.setdefault(name, definition)
        if schema.get("type") == "object" and "title" in schema and "$ref" not in schema:
            name = schema["title"]
            self.components.setdefault(name, schema)
            return {"$ref": REF_TEMPLATE.format(model=name)}
        return schema


def _parameters(route: Route, schemas: _Schemas) -> list[dict[str, Any]]:
    if route.params is None:
        return []
    schema = route.params.model_json_schema(ref_template=REF_TEMPLATE)
    for name, definition in schema.pop("$defs", {}).items():
        schemas.components.setdefault(name, definition)
    in_path = set(route.path_params)
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema.get("properties", {}).items():
        where = "path" if name in in_path else "query"
        entry: dict[str, Any] = {"name": name, "in": where,
                                 "required": where == "path" or name in required,
                                 "schema": prop}
        if "description" in prop:
            entry["description"] = prop["description"]
        out.append(entry)
    return out


def _operation(route: Route, schemas: _Schemas, error: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": route.route_name.replace("/", "_").strip("_")
                                 or route.method.lower()}
    if route.summary:
        operation["summary"] = route.summary
    parameters = _parameters(route, schemas)
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": schemas.of(route.body)}}}
    elif route.body_media_type:
        operation["requestBody"] = {"required": True, "content": {route.body_media_type: {
            "schema": {"type": "string", "contentMediaType": route.body_media_type}}}}
    responses: dict[str, Any] = {}
    if route.answer is Answer.ACCEPTED:
        responses["202"] = {"description": "accepted: handed to the actors without waiting",
                            "content": {"application/json": {"schema": {
                                "type": "object", "required": ["accepted"],
                                "properties": {"accepted": {"type": "integer", "minimum": 0}}}}}}
    elif route.media_type != "application/json":
        responses["200"] = {"description": "the answer", "content": {
            route.media_type: {"schema": {"type": "string", "contentMediaType": route.media_type}}}}
    else:
        schema = schemas.of(route.response) if route.response is not None else {}
        responses["200"] = {"description": "the answer",
                            "content": {"application/json": {"schema": schema}}}
    for kind in refusals_of(route):
        status = str(HTTP_STATUS[kind])
        entry: dict[str, Any] = {"description": f"refused: {kind.value}",
                                 "content": {"application/json": {"schema": error}}}
        if kind in (RefusalKind.UNAVAILABLE, RefusalKind.TOO_MANY):
            entry["headers"] = {"Retry-After": {"description": "seconds to wait",
                                                "schema": {"type": "string"}}}
        responses[status] = entry
    operation["responses"] = responses
    return operation


def openapi_document(routes: Iterable[Route], *, title: str = "ptr edge",
                     version: str = "1") -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes`` (plus the edge's ``/health``)."""
    schemas = _Schemas()
    error = schemas.of(ErrorBody)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schemas, error)
    paths.setdefault("/health", {})["get"] = {
        "operationId": "health",
        "responses": {"200": {"description": "serving", "content": {"application/json": {
            "schema": {"type": "object", "required": ["status"],
                       "properties": {"status": {"const": "ok"},
                                      "in_flight": {"type": "integer"},
                                      "max_in_flight": {"type": "integer"}}}}}},
                      "403": {"description": "refused: forbidden", "content": {
                          "application/json": {"schema": error}}},
                      "503": {"description": "shutting down", "content": {
                          "application/json": {"schema": error}}}}}
    return {"openapi": "3.1.0", "info": {"title": title, "version": version},
            "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
            "paths": paths, "components": {"schemas": schemas.components}}

