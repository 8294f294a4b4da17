"""Global guards on API input, in one place: what no model should ever have to see.

Every JSON body is decoded here (the app's JSON provider and a before_request
guard share `loads`): invalid UTF-8, lone surrogates (escaped "\\udcff" or raw
bytes), NUL characters, numbers beyond 64 bits or beyond a float, NaN, and nesting
deeper than `MAX_DEPTH` are refused with a 400 naming the field, before a view, a
model or the database sees them. Query strings get the same string checks, and a
path id beyond 64 bits is a 404 (SQLite and PostgreSQL refuse such numbers).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from flask import Flask, g, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.wrappers import Response

MAX_DEPTH = 32
MIN_INT, MAX_INT = -(2**63), 2**63 - 1
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


class InputError(ValueError):
    """The request's JSON or query string is not acceptable."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class _OutOfRange:
    """A number in the body too large to keep; `check_value` reports it with its path."""


def _int(text: str) -> int | _OutOfRange:
    # Python refuses to read integers of more than 4300 digits (a ValueError); never try.
    return int(text) if len(text) <= 20 else _OutOfRange()


def _float(text: str) -> float | _OutOfRange:
    value = float(text)
    return _OutOfRange() if math.isinf(value) else value


def _constant(name: str) -> float:
    raise InputError(f"{name} is not a JSON number.")


def _text_problem(text: str) -> str | None:
    found = _BAD_TEXT.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "NUL characters are not allowed"
    return "Lone surrogates are not valid Unicode"


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def check_value(value: Any) -> None:
    """Raise InputError naming the first field that breaks a rule in the module docstring."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        where = path or "the body"
        if isinstance(item, dict | list) and depth >= MAX_DEPTH:
            raise InputError(f"{where}: nested more than {MAX_DEPTH} levels deep.", path)
        if isinstance(item, dict):
            for key, child in item.items():
                if problem := _text_problem(key):
                    raise InputError(f"{where}: a key is not acceptable: {problem}.", path)
                stack.append((child, _child(path, key), depth + 1))
        elif isinstance(item, list):
            stack.extend(
                (child, _child(path, index), depth + 1) for index, child in enumerate(item)
            )
        elif isinstance(item, str):
            if problem := _text_problem(item):
                raise InputError(f"{where}: {problem}.", path)
        elif isinstance(item, _OutOfRange) or (
            isinstance(item, int) and not MIN_INT <= item <= MAX_INT
        ):
            raise InputError(f"{where}: the number is beyond 64 bits.", path)


def loads(data: str | bytes | bytearray) -> Any:
    """The JSON value in `data`; InputError (a ValueError) when it breaks a rule."""
    if isinstance(data, bytes | bytearray):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as error:
            raise InputError(f"The body is not valid UTF-8 (byte {error.start}).") from error
    try:
        value = json.loads(data, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except RecursionError as error:
        raise InputError(f"The JSON is nested more than {MAX_DEPTH} levels deep.") from error
    except json.JSONDecodeError as error:
        raise InputError(
            f"The body is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})."
        ) from error
    except ValueError as error:
        raise InputError("The body is not valid JSON.") from error
    check_value(value)
    return value


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, reading with `loads` (so get_json() obeys the guards too)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s)


def _refused(message: str, field: str | None, status: int) -> Response:
    response = jsonify(error=message, field=field)
    response.status_code = status
    return response


def guard_request() -> Response | None:
    """before_request: refuse what the module docstring lists; keep the parsed body in g."""
    if not request.path.startswith("/api/"):
        return None
    for name, value in (request.view_args or {}).items():
        if isinstance(value, int) and not MIN_INT <= value <= MAX_INT:
            return _refused(f"No such item ({name} is beyond 64 bits).", name, 404)
    for name, value in request.args.items(multi=True):
        problem = _text_problem(name) or _text_problem(value)
        if problem:
            return _refused(f"{name}: {problem}.", name, 400)
    if request.is_json and request.content_length != 0:
        data = request.get_data(cache=True)
        if data:
            try:
                g.json_body = loads(data)
            except InputError as error:
                return _refused(str(error), error.field, 400)
    return None


def install(app: Flask) -> None:
    app.json = StrictJSONProvider(app)
    app.before_request(guard_request)
