"""Exclude patterns: shell globs where `**` crosses directories.

A pattern without a slash matches a name at any depth (`*.log`, `node_modules`);
a pattern with a slash matches the path relative to the source root
(`cache/**`, `**/tmp/*.bin`). A matched directory is skipped whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache


@lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str]:
    body = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**/", index):
            body.append("(?:.*/)?")
            index += 3
            continue
        if pattern.startswith("**", index):
            body.append(".*")
            index += 2
            continue
        if char == "*":
            body.append("[^/]*")
        elif char == "?":
            body.append("[^/]")
        elif char == "[":
            end = pattern.find("]", index + 1)
            if end == -1:
                body.append(re.escape(char))
            else:
                content = pattern[index + 1 : end].replace("\\", "\\\\")
                if content.startswith("!"):
                    content = "^" + content[1:]
                body.append(f"[{content}]")
                index = end
        else:
            body.append(re.escape(char))
        index += 1
    return re.compile("".join(body) + r"\Z", re.DOTALL)


def validate(pattern: str) -> str | None:
    """Why `pattern` is unusable, or None."""
    if not pattern.strip():
        return "an exclude pattern is empty"
    try:
        _compile(pattern.strip().strip("/"))
    except re.error as error:
        return f"exclude pattern {pattern!r} is invalid: {error}"
    return None


def is_excluded(relative_path: str, patterns: Iterable[str]) -> bool:
    """Whether `relative_path` (slash separated, no leading slash) is excluded."""
    name = relative_path.rsplit("/", 1)[-1]
    for raw in patterns:
        pattern = raw.strip().strip("/")
        if not pattern:
            continue
        target = relative_path if "/" in pattern else name
        if _compile(pattern).match(target):
            return True
    return False
