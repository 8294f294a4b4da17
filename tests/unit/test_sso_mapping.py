"""Single sign-on decisions: groups to a role, a provider account to a user name."""

from __future__ import annotations

from typing import Any

import pytest

from mackuper.core.sso import claim_values, role_for_groups, username_for

MAPPING = [("ops", "operator"), ("admins", "administrator"), ("auditors", "viewer")]


@pytest.mark.parametrize(
    ("groups", "refuse", "expected"),
    [
        (["ops"], True, "operator"),
        (["auditors", "ops"], True, "operator"),
        (["ops", "admins"], True, "administrator"),
        (["marketing"], True, None),
        ([], True, None),
        (["marketing"], False, "viewer"),
        (["Ops"], True, None),
    ],
)
def test_the_highest_mapped_role_wins_and_unmapped_accounts_follow_the_setting(
    groups: list[str], refuse: bool, expected: str | None
) -> None:
    assert role_for_groups(groups, MAPPING, refuse, "viewer") == expected


@pytest.mark.parametrize(
    ("claims", "path", "expected"),
    [
        ({"groups": ["a", "b"]}, "groups", ["a", "b"]),
        ({"groups": "a"}, "groups", ["a"]),
        ({"groups": ["a", 3, None]}, "groups", ["a"]),
        ({"groups": {"a": 1}}, "groups", []),
        ({}, "groups", None),
        ({"realm_access": {"roles": ["ops"]}}, "realm_access.roles", ["ops"]),
        ({"realm_access": ["ops"]}, "realm_access.roles", None),
    ],
)
def test_claim_values_read_lists_strings_and_nested_claims(
    claims: dict[str, Any], path: str, expected: list[str] | None
) -> None:
    assert claim_values(claims, path) == expected


@pytest.mark.parametrize(
    ("claims", "taken", "expected"),
    [
        ({"preferred_username": "olivia", "sub": "1"}, set(), "olivia"),
        ({"preferred_username": "olivia", "sub": "1"}, {"olivia"}, "olivia-2"),
        ({"preferred_username": "olivia"}, {"olivia", "olivia-2"}, "olivia-3"),
        ({"email": "o.k@example.org", "sub": "1"}, set(), "o.k@example.org"),
        ({"preferred_username": "Jörg Müller", "sub": "1"}, set(), "J-rg-M-ller"),
        ({"preferred_username": "x", "sub": "abcdef"}, set(), "abcdef"),
        ({"sub": "7"}, set(), "sso-7"),
        ({"preferred_username": "a" * 80}, set(), "a" * 56),
    ],
)
def test_a_new_account_gets_a_free_allowed_user_name(
    claims: dict[str, Any], taken: set[str], expected: str
) -> None:
    name = username_for(claims, taken.__contains__)

    assert name == expected
    assert 3 <= len(name) <= 64
