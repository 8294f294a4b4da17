"""Single sign-on decisions, pure: which role a provider's groups give, which user name
a new account gets. The web layer (web/oidc.py) talks to the provider and the database.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

ROLES = ("viewer", "operator", "administrator")
"""Lowest first, as models.Role orders them."""

USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{3,64}$")
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_.@-]+")


def claim_values(claims: Mapping[str, Any], path: str) -> list[str] | None:
    """The strings at `path` in `claims` ("groups", or dotted for nested claims such as
    Keycloak's "realm_access.roles"), or None when the claim is absent.

    A list keeps its string items; one string is one group (some providers send a
    single group that way); anything else counts as no groups.
    """
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def role_for_groups(
    groups: Iterable[str],
    mapping: Iterable[tuple[str, str]],
    refuse_unmapped: bool,
    default_role: str,
) -> str | None:
    """The highest role any of `groups` maps to; for a user in no mapped group,
    `default_role`, or None (refused) when `refuse_unmapped`."""
    member_of = set(groups)
    granted = [role for group, role in mapping if group in member_of and role in ROLES]
    if granted:
        return max(granted, key=ROLES.index)
    return None if refuse_unmapped else default_role


def username_for(claims: Mapping[str, Any], taken: Callable[[str], bool]) -> str:
    """A free user name for a new single sign-on account: the provider's
    preferred_username, else its e-mail, else its subject, cut to the allowed
    characters; "-2", "-3", ... appended while `taken` says the name is in use."""
    base = ""
    for key in ("preferred_username", "email", "sub"):
        value = claims.get(key)
        if isinstance(value, str):
            base = _NOT_ALLOWED.sub("-", value.strip()).strip("-")[:56]
            if len(base) >= 3:
                break
    if len(base) < 3:
        base = f"sso-{base}".rstrip("-")
    name, number = base, 1
    while taken(name):
        number += 1
        name = f"{base}-{number}"
    return name
