"""Reading JSON bodies and answering with field errors."""

from __future__ import annotations

from typing import Any, NoReturn

from flask import abort, jsonify, request


def sentence(text: str) -> str:
    """`text` as a sentence: first letter upper case (the rest untouched), a final period."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def json_body() -> dict[str, Any]:
    """The request's JSON object; a 400 with a plain message otherwise."""
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        response = jsonify(error="Send a JSON object with Content-Type: application/json.")
        response.status_code = 400
        abort(response)
    return payload


def field_errors(errors: dict[str, str], status: int = 422) -> NoReturn:
    """Abort with per-field messages the form shows next to each field."""
    first = next(iter(errors.values()), "Check the highlighted fields.")
    response = jsonify(error=first, fields=errors)
    response.status_code = status
    abort(response)


def fail(message: str, status: int = 400) -> NoReturn:
    response = jsonify(error=message)
    response.status_code = status
    abort(response)
