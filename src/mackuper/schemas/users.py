"""Users, their roles and the audit log: request bodies, queries and answers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from mackuper.schemas.answers import Answer
from mackuper.schemas.base import QUERY_INT, Input, QueryMoment, Text

RoleName = Literal["viewer", "operator", "administrator"]
"""viewer < operator < administrator; each may do what the ones before it may."""

UserName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@-]{3,64}$")]
"""3 to 64 letters, digits, or . _ @ -"""

NewPassword = Annotated[str, Field(max_length=1024, json_schema_extra={"writeOnly": True})]

Folder = Annotated[Text, Field(max_length=4000, pattern=r"^/")]


class NewUserBody(Input):
    """A user the administrator creates, with a first password to hand over."""

    username: UserName
    password: NewPassword
    role: RoleName = "viewer"
    can_download: bool = False
    restore_targets: Annotated[list[Folder], Field(max_length=50)] = []


class UserChangeBody(Input):
    """A change to a user; a field left out is unchanged."""

    role: RoleName | None = None
    disabled: bool | None = None
    can_download: bool | None = None
    restore_targets: Annotated[list[Folder], Field(max_length=50)] | None = None


class ResetPasswordBody(Input):
    password: NewPassword
    """The new password; the user's sessions end."""


class UserInfo(Answer):
    id: int
    username: str
    role: RoleName
    disabled: bool
    can_download: bool
    restore_targets: list[str]
    created_at: str | None
    single_sign_on: bool = False
    """Signs in through the OpenID provider (created by single sign-on)."""


class UserAnswer(Answer):
    user: UserInfo


class UsersAnswer(Answer):
    users: list[UserInfo]


class AuditQuery(Input):
    """Filters of the audit log; all optional."""

    actor: Annotated[Text, Field(max_length=64)] | None = None
    action: Annotated[Text, Field(max_length=64)] | None = None
    object: Annotated[Text, Field(max_length=200)] | None = None
    since: QueryMoment | None = None
    until: QueryMoment | None = None
    limit: Annotated[int, Field(ge=1, le=1000), QUERY_INT] = 200


class AuditEntry(Answer):
    id: int
    at: str | None
    actor: str | None
    address: str | None
    action: str
    object: str
    details: dict[str, Any]


class AuditAnswer(Answer):
    events: list[AuditEntry]


class RetentionBody(Input):
    keep_days: Annotated[int, Field(ge=1, le=36500)] | None
    """Days an audit entry is kept; null keeps every entry."""


class RetentionAnswer(Answer):
    keep_days: int | None
