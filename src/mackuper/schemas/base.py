"""The Secret marker, the public/secret split, and the field types every model shares.

A field annotated `SecretText` holds a password, key or token: `KindSettings.public()`
leaves it out of the JSON column, `secrets()` returns it for the master key to
encrypt, `keep_stored()` lets a blank one keep the stored value (forms never show
secrets, so they come back blank), and `secret_status()` is what the API shows
instead ("set" / "not set"). The JSON schema marks such a field `writeOnly`.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

MAX_NAME = 100
MAX_TEXT = 4000


class Secret:
    """Marks a field as a secret: encrypted at rest, never shown by the API."""

    def __repr__(self) -> str:
        return "Secret()"


class Input(BaseModel):
    """A request body or settings object: strict types, unknown fields ignored.

    Strict: a list is never read as a string, a bool never as a number, "no" never as
    a bool. Unknown fields are ignored so pages and scripts may send more than a
    model reads (the form's `id`, a `secrets` status it was shown). Each field's
    docstring is its description in the OpenAPI document.
    """

    model_config = ConfigDict(strict=True, extra="ignore", use_attribute_docstrings=True)


def sentence(text: str) -> str:
    """`text` as a sentence: first letter upper case (the rest untouched), a final period."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise ValueError("NUL characters are not allowed")
    return text


def _lines(value: object) -> object:
    """A textarea's text as its lines; a list passes on to be checked item by item."""
    if isinstance(value, str):
        return value.splitlines()
    return value


def _non_blank(items: list[str]) -> list[str]:
    return [item for item in items if item]


def _absolute(path: str) -> str:
    if path and not os.path.isabs(path):
        raise ValueError(f"Use an absolute path ({path} is relative).")
    return path


def absolute_paths(paths: list[str]) -> list[str]:
    """`paths` when all are absolute; ValueError naming the first that is not."""
    if bad := [path for path in paths if not os.path.isabs(path)]:
        raise ValueError(f"Use absolute paths ({bad[0]} is relative).")
    return paths


def says(message: str) -> WrapValidator:
    """A validator that answers `message` for any problem with the value (a form's wording)."""

    def validate(value: object, handler: ValidatorFunctionWrapHandler) -> object:
        try:
            return handler(value)
        except ValidationError as error:
            raise PydanticCustomError("invalid", message) from error

    return WrapValidator(validate)


Text = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=MAX_TEXT), AfterValidator(_no_nul)
]
"""Free text, stripped, at most 4000 characters, no NUL."""

Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME),
    AfterValidator(_no_nul),
]
"""A display name: 1 to 100 characters after stripping."""


def when_empty(message: str) -> WrapValidator:
    """A validator that answers `message` for an empty value (a form's wording for
    "fill this in"); every other problem keeps its own message."""

    def validate(value: object, handler: ValidatorFunctionWrapHandler) -> object:
        try:
            return handler(value)
        except ValidationError as error:
            if any(detail["type"] == "string_too_short" for detail in error.errors()):
                raise PydanticCustomError("empty", message) from error
            raise

    return WrapValidator(validate)


JobName = Annotated[Name, when_empty("Give the job a name.")]
DestinationName = Annotated[Name, when_empty("Give the destination a name.")]
ChannelName = Annotated[Name, when_empty("Give the channel a name.")]

AbsolutePath = Annotated[Text, AfterValidator(_absolute)]

Lines = Annotated[
    list[Text],
    BeforeValidator(_lines),
    AfterValidator(_non_blank),
    WithJsonSchema(
        {
            "description": "A list of strings, or one text of lines.",
            "anyOf": [
                {"type": "array", "items": {"type": "string", "maxLength": MAX_TEXT}},
                {"type": "string"},
            ],
        }
    ),
]
"""A list of strings (or one text of lines): its non-blank stripped items."""

_SECRET_SCHEMA = {"writeOnly": True, "format": "password"}

SecretText = Annotated[
    str,
    Secret(),
    StringConstraints(strip_whitespace=True, max_length=20_000),
    AfterValidator(_no_nul),
    Field(json_schema_extra=_SECRET_SCHEMA),
]
"""A password, key or token, stripped: blank keeps the stored one."""

Passphrase = Annotated[
    str,
    Secret(),
    StringConstraints(max_length=20_000),
    AfterValidator(_no_nul),
    Field(json_schema_extra=_SECRET_SCHEMA),
]
"""A secret taken exactly as typed (spaces count in an encryption passphrase)."""

MAX_ID = 2**63 - 1

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
"""A row id as a JSON number."""


def _query_int(value: object) -> object:
    """A query string's digits as a number; only ASCII digits ("²" is not a number here)."""
    if isinstance(value, str):
        if not re.fullmatch(r"-?[0-9]{1,19}", value):
            raise PydanticCustomError("int_parsing", "Input should be a whole number")
        return int(value)
    return value


QUERY_INT = BeforeValidator(_query_int)
"""Reads a query string's ASCII digits as a number: put it after the number's Field."""

QueryInt = Annotated[int, Field(ge=-MAX_ID, le=MAX_ID), QUERY_INT]
"""A whole number in a query string: ASCII digits within 64 bits."""

QueryId = Annotated[int, Field(ge=1, le=MAX_ID), QUERY_INT]
"""A row id in a query string."""


def _moment(value: object) -> object:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError as error:
            raise PydanticCustomError(
                "datetime_parsing", "Input should be an ISO date or time"
            ) from error
        try:
            # In UTC here, as the database compares: year 1 at +14:00 has no UTC time.
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
        except OverflowError as error:
            raise PydanticCustomError(
                "datetime_range", "Input should be a time that exists in UTC"
            ) from error
    return value


QueryMoment = Annotated[datetime, BeforeValidator(_moment)]
"""An ISO 8601 date or time in a query string; without a zone it is UTC."""


def _day(value: object) -> object:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError as error:
            raise PydanticCustomError(
                "date_parsing", "Input should be a day as YYYY-MM-DD"
            ) from error
    return value


QueryDay = Annotated[date, BeforeValidator(_day), Field(ge=date(1970, 1, 1), le=date(9000, 12, 31))]
"""A day (YYYY-MM-DD) in a query string, from 1970 on: far enough from year 1 and 9999
that its midnight exists in every zone."""


def secret_names(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields of `model` marked Secret, in declaration order."""
    return tuple(
        name
        for name, field in model.model_fields.items()
        if any(isinstance(item, Secret) for item in field.metadata)
    )


def secret_status(model: type[BaseModel], stored: dict[str, Any]) -> dict[str, str]:
    """What the API shows of `model`'s secrets: "set" or "not set" per field."""
    return {name: "set" if stored.get(name) else "not set" for name in secret_names(model)}


class KindSettings(Input):
    """Settings of one kind (a source, a destination, encryption, alerts): see the module."""

    show_secret_status: ClassVar[bool] = False
    """Store the secrets' "set"/"not set" status in the public JSON too (SSH sources)."""

    def unused_secrets(self) -> set[str]:
        """Secret fields these settings do not use (a password when a key logs in)."""
        return set()

    def keep_stored(self, stored: dict[str, Any]) -> Self:
        """A copy where each blank secret field holds its `stored` value."""
        kept = {
            name: stored[name]
            for name in secret_names(type(self))
            if not getattr(self, name) and isinstance(stored.get(name), str | list)
        }
        return self.model_copy(update=kept)

    def problems(self) -> dict[str, str]:
        """Checks that need the stored secrets (call after keep_stored); field: message."""
        return {}

    def secrets(self) -> dict[str, Any]:
        """The secret fields in use that hold a value: what the master key encrypts."""
        unused = self.unused_secrets()
        return {
            name: getattr(self, name)
            for name in secret_names(type(self))
            if name not in unused and getattr(self, name)
        }

    def public(self) -> dict[str, Any]:
        """Every other field, as the JSON column stores it."""
        data = self.model_dump(mode="json", exclude=set(secret_names(type(self))))
        if self.show_secret_status:
            data["secrets"] = secret_status(type(self), self.secrets())
        return data
