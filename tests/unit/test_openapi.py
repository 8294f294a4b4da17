"""The API describes itself: /api/openapi.json is valid OpenAPI 3.1 and covers every
/api route in the URL map; /api-reference shows it under the strict CSP."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask import Flask, jsonify
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator
from werkzeug.wrappers import Response

from mackuper.models import RunLog
from mackuper.runtime import Runtime
from mackuper.web.openapi import build_document
from tests.conftest import ApiClient

_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def _url_map_operations(app: Flask) -> set[tuple[str, str]]:
    """(OpenAPI path, method) of every /api route, read from Flask's URL map."""
    operations = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        operations.update((path, method.lower()) for method in (rule.methods or ()) & _METHODS)
    return operations


def _documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method) for path, item in document["paths"].items() for method in item}


def test_the_served_document_is_valid_openapi_3_1(api: ApiClient, app: Flask) -> None:
    response = api.call("GET", "/api/openapi.json")

    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.1")
    OpenAPIV31SpecValidator(document).validate()
    assert document == build_document(app)


def test_the_document_covers_every_api_route_of_the_url_map(app: Flask) -> None:
    document = build_document(app)

    assert _documented_operations(document) == _url_map_operations(app)
    assert len(_url_map_operations(app)) > 50


def test_a_route_added_without_a_description_is_missing_from_the_document(app: Flask) -> None:
    @app.get("/api/undescribed")
    def undescribed() -> Response:
        return jsonify(ok=True)

    document = build_document(app)

    assert ("/api/undescribed", "get") in _url_map_operations(app)
    assert ("/api/undescribed", "get") not in _documented_operations(document)


def test_each_fields_docstring_describes_it_in_answers_and_bodies(app: Flask) -> None:
    """A field's docstring in schemas/ is what a reader of the document sees for it."""
    schemas = build_document(app)["components"]["schemas"]
    queue = schemas["Run"]["properties"]["queue_position"]
    assert queue["description"] == (
        "While queued: its place among the queued runs of its lane (1: next); else None."
    )
    days = schemas["TokenBody"]["properties"]["expires_in_days"]
    assert days["description"].startswith("Days until the token stops working")


def test_secrets_are_write_only_and_bodies_come_from_the_models(app: Flask) -> None:
    document = build_document(app)
    schemas = document["components"]["schemas"]

    s3 = schemas["S3DestinationBody"]["properties"]
    assert s3["secret_access_key"]["writeOnly"] is True
    assert s3["bucket"]["type"] == "string"
    assert schemas["SSHSource"]["properties"]["password"]["writeOnly"] is True
    assert schemas["Encryption"]["properties"]["passphrase"]["writeOnly"] is True
    job = document["paths"]["/api/jobs"]["post"]
    assert job["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/JobBody"
    }
    runs = {p["name"]: p for p in document["paths"]["/api/runs"]["get"]["parameters"]}
    assert runs["job_id"]["schema"]["maximum"] == 2**63 - 1


def test_the_reference_page_lists_every_operation_without_inline_script(
    api: ApiClient, app: Flask
) -> None:
    response = api.client.get("/api-reference")

    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    page = response.get_data(as_text=True)
    assert all("src=" in tag for tag in re.findall(r"<script[^>]*>", page))
    assert " style=" not in page
    for path, method in _documented_operations(build_document(app)):
        assert f"{method.upper()} {path}" in page


def test_the_document_needs_a_login(client: Any) -> None:
    api = ApiClient(client)
    api.refresh_csrf("/setup")
    api.call("POST", "/api/setup/admin", {"username": "admin", "password": "Correct-Horse-9"})
    api.call("POST", "/api/logout")

    assert client.get("/api/openapi.json").status_code == 401


def test_real_answers_fit_their_documented_schemas(
    api: ApiClient, app: Flask, runtime: Runtime, tmp_path: Path
) -> None:
    destination = api.call(
        "POST", "/api/destinations", {"name": "disk", "kind": "local", "path": str(tmp_path)}
    )
    assert destination.status_code == 201, destination.get_data(as_text=True)
    destination_id = destination.get_json()["destination"]["id"]
    job = api.call(
        "POST",
        "/api/jobs",
        {
            "name": "docs",
            "source": {"paths": [str(tmp_path)]},
            "schedule": "0 2 * * *",
            "destination_ids": [destination_id],
            "encryption": {"mode": "passphrase", "passphrase": "long enough passphrase"},
            "notifications": {"ping_fail": "https://hc.example/ping/1"},
            "hooks": {"pre": {"command": "true"}},
        },
    )
    assert job.status_code == 201, job.get_data(as_text=True)
    job_id = job.get_json()["job"]["id"]
    run = api.call("POST", f"/api/jobs/{job_id}/run")
    run_id = run.get_json()["run"]["id"]
    with runtime.sessions.begin() as session:
        session.add(RunLog(run_id=run_id, level="info", message="queued"))
    document = build_document(app)

    for method, path in [
        ("GET", "/api/jobs"),
        ("GET", f"/api/jobs/{job_id}"),
        ("GET", f"/api/jobs/{job_id}/alerts"),
        ("GET", f"/api/jobs/{job_id}/retention/preview"),
        ("GET", "/api/destinations"),
        ("GET", "/api/runs"),
        ("GET", f"/api/runs/{run_id}"),
        ("GET", f"/api/runs/{run_id}/log"),
        ("GET", "/api/dashboard"),
        ("GET", "/api/ui/jobs"),
        ("GET", "/api/ui/chart"),
        ("GET", f"/api/ui/runs/{run_id}/estimate"),
        ("GET", "/api/settings/installation"),
        ("GET", "/api/tokens"),
        ("GET", "/api/about"),
        ("GET", "/api/verify/schedule"),
        ("POST", "/api/encryption/identity"),
        ("POST", f"/api/runs/{run_id}/cancel"),
    ]:
        response = api.call(method, path)
        assert response.status_code < 300, (path, response.get_data(as_text=True))
        template = re.sub(r"/\d+", "/{id}", path)
        item = next(
            methods[method.lower()]
            for documented, methods in document["paths"].items()
            if re.sub(r"\{[^}]+\}", "{id}", documented) == template
        )
        schema = item["responses"][str(response.status_code)]["content"]["application/json"]
        validator = Draft202012Validator({**document, **schema["schema"]})
        errors = [error.message for error in validator.iter_errors(response.get_json())]
        assert not errors, (path, errors)
