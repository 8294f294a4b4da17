"""Single sign-on settings and invitations: request bodies and answers."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import AfterValidator, Field, model_validator

from mackuper.schemas.answers import Answer
from mackuper.schemas.base import Input, KindSettings, SecretText, Text
from mackuper.schemas.users import RoleName, UserName


def _web_address(value: str) -> str:
    if value and not value.startswith(("https://", "http://")):
        raise ValueError("Give the provider's address, starting with https://.")
    return value.rstrip("/")


def _scopes(value: str) -> str:
    words = value.split()
    if "openid" not in words:
        raise ValueError('The scopes must include "openid".')
    return " ".join(words)


class GroupRole(Input):
    """Members of `group` (a value of the groups claim) get `role`."""

    group: Annotated[Text, Field(min_length=1, max_length=255)]
    role: RoleName


class SsoSettings(KindSettings):
    """OpenID Connect single sign-on; the client secret is encrypted at rest.

    A user whose groups map to several roles gets the highest; a user in no mapped
    group is refused (`refuse_unmapped`) or gets `default_role`. With `sso_only`,
    password logins are refused except for the break-glass account: the oldest
    enabled local administrator.
    """

    enabled: bool = False
    issuer: Annotated[Text, Field(max_length=255), AfterValidator(_web_address)] = ""
    """The provider's issuer URL; its /.well-known/openid-configuration is read."""
    client_id: Annotated[Text, Field(max_length=255)] = ""
    client_secret: SecretText = ""
    scopes: Annotated[Text, Field(max_length=500), AfterValidator(_scopes)] = (
        "openid email profile groups"
    )
    groups_claim: Annotated[Text, Field(min_length=1, max_length=100)] = "groups"
    """The claim holding the user's groups; dots reach into nested claims."""
    role_mapping: Annotated[list[GroupRole], Field(max_length=200)] = []
    refuse_unmapped: bool = True
    default_role: RoleName = "viewer"
    """The role of a user in no mapped group, when such users are not refused."""
    sso_only: bool = False
    """Refuse password logins, except the break-glass administrator's."""

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> Self:
        if self.enabled and not (self.issuer and self.client_id):
            raise ValueError("Single sign-on needs the issuer URL and the client ID.")
        return self


class SsoSettingsAnswer(Answer):
    settings: dict[str, object]
    """The settings without the client secret, which shows as "set" or "not set"."""
    redirect_uri: str
    """The address to register at the provider as this client's redirect URI."""


class InvitationBody(Input):
    """A user to invite: the link lets them set their own password."""

    username: UserName
    role: RoleName = "viewer"
    can_download: bool = False
    expires_in_hours: Annotated[int, Field(ge=1, le=24 * 30)] = 72


class InvitationInfo(Answer):
    id: int
    username: str
    role: RoleName
    invited_by: str | None
    created_at: str | None
    expires_at: str | None
    state: str
    """pending, used, expired or revoked."""


class NewInvitationAnswer(Answer):
    invitation: InvitationInfo
    link: str
    """Shown once: only its hash is stored."""


class InvitationsAnswer(Answer):
    invitations: list[InvitationInfo]


InvitationToken = Annotated[
    str, Field(min_length=20, max_length=200, json_schema_extra={"writeOnly": True})
]


class InvitationLookupBody(Input):
    token: InvitationToken


class InvitationLookupAnswer(Answer):
    username: str
    role: RoleName
    expires_at: str | None


class AcceptInvitationBody(Input):
    token: InvitationToken
    password: Annotated[str, Field(max_length=1024, json_schema_extra={"writeOnly": True})]
    password_confirm: (
        Annotated[str, Field(max_length=1024, json_schema_extra={"writeOnly": True})] | None
    ) = None
