"""Reading JSON bodies and query strings into models, and answering with field errors.

An error answer is `{"error": "...", "field": "destination_ids[0]", "fields": {...}}`:
`error` is one sentence for the top of a form, `field` the path of the first bad
value, and `fields` maps the form's own field names (`paths`, `encryption.passphrase`,
`retention.keep_days`) to the message shown next to each field.
"""

from __future__ import annotations

from typing import Any, NoReturn

from flask import abort, g, jsonify, request
from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from mackuper.schemas.base import sentence

Location = tuple[str | int, ...]
_WORDED_FOR_A_FORM = {"value_error", "invalid"}
"""Messages written for the field they sit next to; others are prefixed with its path."""


def field_path(location: Location) -> str:
    """`("destination_ids", 0)` as "destination_ids[0]"; `("source", "paths")` as "source.paths"."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


def form_key(location: Location) -> str:
    """The name the pages give the field: no list indexes, source fields without "source."."""
    names = [part for part in location if isinstance(part, str)]
    if len(names) > 1 and names[0] == "source":
        names = names[1:]
    return ".".join(names)


def _message(error: ErrorDetails) -> str:
    if error["type"] == "value_error":
        return sentence(str(error.get("ctx", {}).get("error", error["msg"])))
    if error["type"] == "string_too_short" and error.get("ctx", {}).get("min_length") == 1:
        return "Fill in this field."
    return sentence(error["msg"])


def field_messages(error: ValidationError, prefix: Location = ()) -> dict[str, str]:
    """The form's messages for `error` (raised for data found at `prefix`), by field key."""
    fields: dict[str, str] = {}
    for detail in error.errors(include_url=False, include_input=False):
        location: Location = (*prefix, *detail["loc"])
        message = _message(detail)
        fields.setdefault(form_key(location), message)
        if len(location) > 1 and isinstance(location[0], str):
            fields.setdefault(location[0], message)
    return fields


def validation_failed(error: ValidationError, prefix: Location = (), status: int = 422) -> NoReturn:
    """Abort with the errors of `error` (raised for data found at `prefix`)."""
    first_path, first_message = "", "Check the highlighted fields."
    details = error.errors(include_url=False, include_input=False)
    if details:
        location: Location = (*prefix, *details[0]["loc"])
        message = _message(details[0])
        first_path = field_path(location)
        named = details[0]["type"] in _WORDED_FOR_A_FORM or not first_path
        first_message = message if named else f"{first_path}: {message}"
    response = jsonify(
        error=first_message, field=first_path or None, fields=field_messages(error, prefix)
    )
    response.status_code = status
    abort(response)


_adapters: dict[Any, TypeAdapter[Any]] = {}


def parse(model: Any, data: object, prefix: Location = ()) -> Any:
    """`data` validated as `model` (a model class or any type); a 422 naming the field if not."""
    adapter = _adapters.get(model)
    if adapter is None:
        adapter = _adapters[model] = TypeAdapter(model)
    try:
        return adapter.validate_python(data)
    except ValidationError as error:
        validation_failed(error, prefix)


def json_body() -> dict[str, Any]:
    """The request's JSON object (decoded once by web.json_input); a 400 otherwise."""
    payload = g.get("json_body")
    if payload is None and request.is_json:
        payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        fail("Send a JSON object with Content-Type: application/json.", 400)
    return payload


def query_args() -> dict[str, str]:
    """The query string, one value per name; empty values count as left out."""
    return {name: value for name, value in request.args.items() if value != ""}


def field_errors(errors: dict[str, str], status: int = 422) -> NoReturn:
    """Abort with per-field messages the form shows next to each field."""
    first = next(iter(errors), None)
    message = errors[first] if first else "Check the highlighted fields."
    response = jsonify(error=message, field=first, fields=errors)
    response.status_code = status
    abort(response)


def fail(message: str, status: int = 400) -> NoReturn:
    response = jsonify(error=message)
    response.status_code = status
    abort(response)
