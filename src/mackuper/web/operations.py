"""The API's route table: what each /api view reads and answers, recorded by `operation`.

Why a decorator of our own and not spectree or flask-openapi3: the models already
exist (mackuper.schemas), the error answer must keep the pages' shape
(web.forms), and the document needs only a few dozen lines on top of pydantic's
own JSON schema (web.openapi); a library would bring its own error format and
validation path next to ours. The decorator both validates and describes, so a
body or query the document shows is the one the view checked:

    @blueprint.post("/jobs")
    @login_required
    @operation("Create a job", body=JobBody, responses={201: JobAnswer})
    def create_job(body: JobBody) -> ...

A view gets `body=` and `query=` arguments with the validated models (also kept in
`g.api_body` and `g.api_query`, where the audit log reads them). With
`parse_body=False` the view validates itself (a destination's settings depend on
the stored row's kind) and `body` only describes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from flask import g, request

from mackuper.web.forms import json_body, parse, query_args

View = TypeVar("View", bound=Callable[..., Any])


@dataclass(frozen=True)
class Files:
    """An answer that is a file's bytes, of one of `media_types`."""

    media_types: tuple[str, ...]


BINARY = Files(("application/octet-stream",))
"""The bytes of a file, as stored (a whole backup)."""
FILE_OR_TAR = Files(("application/octet-stream", "application/x-tar"))
"""One file's bytes, or a folder as a tar."""


@dataclass(frozen=True)
class Operation:
    summary: str
    body: Any = None
    query: Any = None
    responses: Mapping[int, Any] = field(default_factory=lambda: {200: None})
    """Status -> a model (its JSON), None (any JSON object) or Files."""
    description: str = ""
    public: bool = False
    """Needs no login (login, setup)."""
    optional_body: bool = False
    """The body may be left out (a DELETE with options)."""


def operation(
    summary: str,
    *,
    body: Any = None,
    query: Any = None,
    responses: Mapping[int, Any] | None = None,
    parse_body: bool = True,
    optional_body: bool = False,
    public: bool = False,
) -> Callable[[View], View]:
    """Record what the view reads and answers; pass it the validated `body` and `query`."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if body is not None and parse_body:
                given = json_body() if not optional_body or request.get_data(cache=True) else {}
                kwargs["body"] = g.api_body = parse(body, given)
            if query is not None:
                kwargs["query"] = g.api_query = parse(query, query_args())
            return view(*args, **kwargs)

        wrapper.api_operation = Operation(  # type: ignore[attr-defined]
            summary=summary,
            body=body,
            query=query,
            responses=responses or {200: None},
            description=(view.__doc__ or "").strip(),
            public=public,
            optional_body=optional_body,
        )
        return cast(View, wrapper)

    return decorate


def operation_of(view: Callable[..., Any]) -> Operation | None:
    """The Operation recorded on `view` (through any wrapping decorators), if any."""
    current: Any = view
    while current is not None:
        found = getattr(current, "api_operation", None)
        if isinstance(found, Operation):
            return found
        current = getattr(current, "__wrapped__", None)
    return None
