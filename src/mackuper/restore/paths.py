"""Pure decisions about member paths: what is safe to write, what is selected.

A member name becomes a tuple of plain path parts or is refused: no absolute
paths, no `..`, no empty or NUL parts. Links are judged lexically against the
restore root, which is enough because the targets never follow a symbolic link
when they write (see targets.py).
"""

from __future__ import annotations

from mackuper.restore.errors import Refused

MAX_NAME_BYTES = 4096
MAX_PART_BYTES = 255
_NOTHING = frozenset({"", "."})


def member_parts(name: str) -> tuple[str, ...]:
    """The path parts of an archive member; raises Refused when it could escape."""
    if "\x00" in name:
        raise Refused("its name contains a NUL byte")
    size = len(name.encode("utf-8", "surrogateescape"))
    if size > MAX_NAME_BYTES:
        raise Refused("its name is longer than 4096 bytes")
    if name.startswith("/") or (len(name) > 2 and name[0].isalpha() and name[1:3] == ":/"):
        raise Refused("its path is absolute")
    parts = tuple(part for part in name.split("/") if part not in _NOTHING)
    if ".." in parts:
        raise Refused("its path contains '..'")
    if not parts:
        raise Refused("its name is empty")
    # A part is never longer than the whole name: most names need no check per part.
    if size > MAX_PART_BYTES and any(
        len(part.encode("utf-8", "surrogateescape")) > MAX_PART_BYTES for part in parts
    ):
        raise Refused("a part of its name is longer than 255 bytes")
    return parts


def check_symlink(parts: tuple[str, ...], target: str) -> None:
    """Raise Refused unless the link at `parts` points inside the restore root."""
    if not target or "\x00" in target:
        raise Refused("its link target is empty or invalid")
    if target.startswith("/"):
        raise Refused(f"it is a symbolic link to an absolute path ({target})")
    depth = 0
    for part in [*parts[:-1], *target.split("/")]:
        if part in {"", "."}:
            continue
        depth = depth - 1 if part == ".." else depth + 1
        if depth < 0:
            raise Refused(f"it is a symbolic link pointing outside the target ({target})")


def normalize_selection(paths: list[str]) -> list[tuple[str, ...]]:
    """Selected paths as parts; raises ValueError for a path that could escape."""
    selected = []
    for path in paths:
        try:
            selected.append(member_parts(path.lstrip("/")))
        except Refused as error:
            raise ValueError(f"{path!r}: {error}") from None
    return selected


def is_selected(parts: tuple[str, ...], selection: list[tuple[str, ...]]) -> bool:
    """Whether a member is one of `selection` or inside one of its folders."""
    if not selection:
        return True
    return any(parts[: len(chosen)] == chosen for chosen in selection)


def keep_both_name(name: str, attempt: int) -> str:
    """'report.txt' -> 'report (restored).txt', then 'report (restored 2).txt'."""
    stem, dot, extension = name.partition(".") if not name.startswith(".") else (name, "", "")
    label = " (restored)" if attempt == 1 else f" (restored {attempt})"
    return f"{stem}{label}{dot}{extension}"
