"""Worker labels: the words a worker is known by, and what a job may ask for.

A worker carries labels (by default its host name); a job whose files are on one
machine names the label of the workers that may run it. Labels are compared in
lower case, as host names are.
"""

from __future__ import annotations

import re

LABEL_LENGTH = 64
LABEL = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")
"""A host-name-like word: letters, digits, dots, dashes, underscores; 1 to 64 long."""
LABEL_RULE = (
    "letters, digits, dots, dashes and underscores, starting and ending with a letter"
    " or digit, at most 64 long"
)


def normalize_label(text: str) -> str:
    """`text` as a label (trimmed, lower case); ValueError when it is not one."""
    label = text.strip().lower()
    if not LABEL.fullmatch(label):
        raise ValueError(f"{text.strip()!r} is not a label ({LABEL_RULE})")
    return label


def parse_labels(text: str) -> tuple[str, ...]:
    """The labels in a comma-separated list, each once, in order; ValueError for a bad one."""
    labels: list[str] = []
    for part in text.split(","):
        if part.strip():
            label = normalize_label(part)
            if label not in labels:
                labels.append(label)
    return tuple(labels)


def host_label(hostname: str) -> str:
    """The default label of a worker on `hostname`: the host name, made a label."""
    word = re.sub(r"[^a-z0-9._-]", "-", hostname.strip().lower())
    word = word[:LABEL_LENGTH].strip("._-")
    return word or "worker"
