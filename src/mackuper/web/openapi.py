"""The OpenAPI 3.1 document of the JSON API, and a readable reference page built from it.

The document is generated, never written by hand: paths and methods come from the
Flask URL map, bodies, queries and answers from the `operation` each /api view
carries (web.operations), and every schema from the pydantic models through
`TypeAdapter.json_schemas` with refs under "#/components/schemas/". A route
without an operation is left out, which the tests catch by comparing the
document with the URL map.

/api/openapi.json serves it; /api-reference renders it as plain HTML (no script,
so the strict Content-Security-Policy holds).
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, render_template
from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode
from werkzeug.routing import Rule
from werkzeug.wrappers import Response

from mackuper import __version__
from mackuper.schemas.answers import ErrorAnswer
from mackuper.web.operations import Files, Operation, operation, operation_of
from mackuper.web.security import login_required

blueprint = Blueprint("openapi", __name__)

REF_TEMPLATE = "#/components/schemas/{model}"
_ARGUMENT = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
_METHODS = ("get", "post", "put", "patch", "delete")
_PATH_SCHEMAS = {
    "int": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
    "path": {"type": "string"},
    "default": {"type": "string", "pattern": "^[^/]+$"},
}


def api_rules(app: Flask) -> list[Rule]:
    """The URL map's /api rules, in a stable order."""
    return sorted(
        (rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/")),
        key=lambda rule: (rule.rule, sorted(rule.methods or ())),
    )


def rule_methods(rule: Rule) -> list[str]:
    return [method.lower() for method in sorted(rule.methods or ()) if method.lower() in _METHODS]


def openapi_path(rule: Rule) -> str:
    """`/api/jobs/<int:job_id>` as `/api/jobs/{job_id}`."""
    return _ARGUMENT.sub(lambda match: "{" + match.group("name") + "}", rule.rule)


class _Schemas:
    """Collects every type the document names, then renders them in one pydantic pass."""

    def __init__(self) -> None:
        self.models: dict[tuple[str, int], Any] = {}

    def add(self, kind: str, model: Any) -> None:
        self.models[(kind, id(model))] = model

    def render(self) -> tuple[dict[tuple[str, int], dict[str, Any]], dict[str, Any]]:
        """(schema per added type, the shared definitions for components/schemas)."""
        inputs: list[tuple[tuple[str, int], JsonSchemaMode, TypeAdapter[Any]]] = [
            (key, "serialization" if key[0] == "answer" else "validation", TypeAdapter(model))
            for key, model in self.models.items()
        ]
        schemas, definitions = TypeAdapter.json_schemas(inputs, ref_template=REF_TEMPLATE)
        rendered = {key: schema for (key, _mode), schema in schemas.items()}
        return rendered, definitions.get("$defs", {})


def _parameters(
    rule: Rule, op: Operation, rendered: dict[Any, Any], definitions: dict[str, Any]
) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = []
    for match in _ARGUMENT.finditer(rule.rule):
        converter = match.group("converter") or "default"
        parameters.append(
            {
                "name": match.group("name"),
                "in": "path",
                "required": True,
                "schema": _PATH_SCHEMAS.get(converter, _PATH_SCHEMAS["default"]),
            }
        )
    if op.query is not None:
        schema = rendered[("query", id(op.query))]
        if "$ref" in schema:
            schema = definitions[schema["$ref"].rsplit("/", 1)[-1]]
        required = set(schema.get("required", ()))
        for name, field_schema in schema.get("properties", {}).items():
            parameter: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": _query_schema(field_schema),
            }
            if "description" in field_schema:
                parameter["description"] = field_schema["description"]
            parameters.append(parameter)
    return parameters


def _query_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A query field's schema without its title, and without the null a query cannot send."""
    schema = {key: value for key, value in schema.items() if key != "title"}
    choices = schema.get("anyOf")
    if isinstance(choices, list):
        kept = [choice for choice in choices if choice != {"type": "null"}]
        if len(kept) == 1:
            del schema["anyOf"]
            schema.update(kept[0])
        if schema.get("default", 0) is None:
            del schema["default"]
    return schema


def _response(status: int, answer: Any, rendered: dict[Any, Any]) -> dict[str, Any]:
    description = "Success" if status < 300 else "Answer"
    if isinstance(answer, Files):
        return {
            "description": "The file's bytes",
            "content": {
                media_type: {"schema": {"type": "string", "contentMediaType": media_type}}
                for media_type in answer.media_types
            },
        }
    schema = {"type": "object"} if answer is None else rendered[("answer", id(answer))]
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def build_document(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every /api route that has an operation."""
    schemas = _Schemas()
    schemas.add("answer", ErrorAnswer)
    found: list[tuple[Rule, str, Operation]] = []
    for rule in api_rules(app):
        op = operation_of(app.view_functions[rule.endpoint])
        if op is None:
            continue
        for method in rule_methods(rule):
            found.append((rule, method, op))
        if op.body is not None:
            schemas.add("body", op.body)
        if op.query is not None:
            schemas.add("query", op.query)
        for answer in op.responses.values():
            if answer is not None and not isinstance(answer, Files):
                schemas.add("answer", answer)
    rendered, definitions = schemas.render()
    paths: dict[str, dict[str, Any]] = {}
    for rule, method, op in found:
        item: dict[str, Any] = {
            "operationId": f"{rule.endpoint}.{method}",
            "summary": op.summary,
            "tags": [rule.endpoint.split(".", 1)[0]],
            "responses": {
                str(status): _response(status, answer, rendered)
                for status, answer in op.responses.items()
            },
        }
        item["responses"]["default"] = {
            "description": "An error: a sentence to show, and the field it is about",
            "content": {"application/json": {"schema": rendered[("answer", id(ErrorAnswer))]}},
        }
        if op.description:
            item["description"] = op.description
        if parameters := _parameters(rule, op, rendered, definitions):
            item["parameters"] = parameters
        if op.body is not None:
            item["requestBody"] = {
                "required": not op.optional_body,
                "content": {"application/json": {"schema": rendered[("body", id(op.body))]}},
            }
        if op.public:
            item["security"] = []
        paths.setdefault(openapi_path(rule), {})[method] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Mackuper API",
            "version": __version__,
            "description": (
                "Self-hosted backups. Authenticate scripts with `Authorization: Bearer mkp_...`"
                " (Settings → API tokens); pages use the session cookie and send"
                " X-CSRF-Token on every change. Secrets are write-only: answers say"
                ' "set" or "not set".'
            ),
        },
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": paths,
        "components": {
            "schemas": definitions,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "mackuper_session"},
            },
        },
    }


def document() -> dict[str, Any]:
    """The current app's document, built once per app."""
    cached: dict[str, Any] | None = current_app.extensions.get("mackuper_openapi")
    if cached is None:
        cached = current_app.extensions["mackuper_openapi"] = build_document(current_app)
    return cached


@blueprint.get("/api/openapi.json")
@login_required
@operation("This API's OpenAPI 3.1 document")
def openapi_json() -> Response:
    return jsonify(document())


def _pretty(schema: Any) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False)


@blueprint.get("/api-reference")
@login_required
def reference_page() -> str:
    """Every operation with its parameters, body and answers, from the document."""
    spec = document()
    operations = [
        {"path": path, "method": method.upper(), **item}
        for path, methods in spec["paths"].items()
        for method, item in methods.items()
    ]
    return render_template(
        "api_reference.html",
        tab="settings",
        spec=spec,
        operations=operations,
        schemas=spec["components"]["schemas"],
        pretty=_pretty,
    )
