"""Which member names are safe to write, which links stay inside, what is selected.

The same rules end to end, against hostile tar and zip files, are in
tests/integration/test_restore_hostile.py; here each rule is one row.
"""

from __future__ import annotations

import pytest

from mackuper.restore.errors import Refused
from mackuper.restore.paths import (
    check_symlink,
    is_selected,
    keep_both_name,
    member_parts,
    normalize_selection,
)


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("docs/report.txt", ("docs", "report.txt")),
        ("./docs//report.txt", ("docs", "report.txt")),
        ("docs/", ("docs",)),
        ("a/./b", ("a", "b")),
        ("..hidden/x..y", ("..hidden", "x..y")),
        ("C:relative", ("C:relative",)),
        ("é" * 127, ("é" * 127,)),  # 254 bytes: one part may be 255
    ],
)
def test_member_names_become_plain_parts(name: str, parts: tuple[str, ...]) -> None:
    assert member_parts(name) == parts


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("/etc/passwd", "absolute"),
        ("C:/Windows/x", "absolute"),
        ("../escape", "'..'"),
        ("safe/../../escape", "'..'"),
        ("a/..", "'..'"),
        ("", "empty"),
        ("./", "empty"),
        ("bad\x00name", "NUL"),
        ("x" * 256, "255 bytes"),
        ("é" * 128, "255 bytes"),
        ("a/" * 2048 + "b", "4096 bytes"),
    ],
)
def test_member_names_that_could_escape_are_refused(name: str, reason: str) -> None:
    with pytest.raises(Refused, match=reason):
        member_parts(name)


@pytest.mark.parametrize(
    ("parts", "target"),
    [
        (("link",), "file.txt"),
        (("docs", "link"), "../file.txt"),
        (("docs", "link"), "./sub/../file.txt"),
        (("a", "b", "link"), "../../c/d"),
    ],
)
def test_links_that_stay_inside_the_target_are_allowed(parts: tuple[str, ...], target: str) -> None:
    check_symlink(parts, target)


@pytest.mark.parametrize(
    ("parts", "target", "reason"),
    [
        (("link",), "../outside", "outside the target"),
        (("docs", "link"), "../../outside", "outside the target"),
        # Judged step by step: leaving the root and coming back is still leaving.
        (("link",), "../target/file.txt", "outside the target"),
        (("link",), "/etc/passwd", "absolute path"),
        (("link",), "", "empty or invalid"),
        (("link",), "a\x00b", "empty or invalid"),
    ],
)
def test_links_that_point_outside_are_refused(
    parts: tuple[str, ...], target: str, reason: str
) -> None:
    with pytest.raises(Refused, match=reason):
        check_symlink(parts, target)


def test_selection_drops_leading_slashes_and_refuses_escapes() -> None:
    assert normalize_selection(["/docs/a.txt", "photos/"]) == [("docs", "a.txt"), ("photos",)]
    with pytest.raises(ValueError, match="'../etc': its path contains '..'"):
        normalize_selection(["docs", "../etc"])


@pytest.mark.parametrize(
    ("parts", "selected"),
    [
        (("docs", "a.txt"), True),  # inside a selected folder
        (("docs",), True),
        (("photos", "b.jpg"), True),  # the selected file itself
        (("docs2", "a.txt"), False),  # a name that starts the same is another folder
        (("photos", "b.jpg.bak"), False),
        (("other",), False),
    ],
)
def test_a_member_is_selected_by_its_folder_or_itself(
    parts: tuple[str, ...], selected: bool
) -> None:
    assert is_selected(parts, [("docs",), ("photos", "b.jpg")]) is selected


def test_no_selection_selects_everything() -> None:
    assert is_selected(("anything", "at", "all"), [])


@pytest.mark.parametrize(
    ("name", "attempt", "renamed"),
    [
        ("report.txt", 1, "report (restored).txt"),
        ("report.txt", 2, "report (restored 2).txt"),
        ("archive.tar.gz", 1, "archive (restored).tar.gz"),
        ("README", 1, "README (restored)"),
        (".bashrc", 3, ".bashrc (restored 3)"),
    ],
)
def test_keep_both_names_the_copy_before_its_extension(
    name: str, attempt: int, renamed: str
) -> None:
    assert keep_both_name(name, attempt) == renamed
