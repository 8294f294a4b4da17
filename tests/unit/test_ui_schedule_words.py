"""The jobs list says common cron schedules in words and falls back to the expression."""

from __future__ import annotations

import pytest

from mackuper.web.ui_api import describe_cron


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("0 2 * * *", "every day at 02:00"),
        ("@daily", "every day at 00:00"),
        ("30 3 * * 0", "every Sunday at 03:30"),
        ("30 3 * * 7", "every Sunday at 03:30"),
        ("15 22 * * 1-5", "every weekday at 22:15"),
        ("0 3 1 * *", "on the 1st of every month at 03:00"),
        ("0 3 22 * *", "on the 22nd of every month at 03:00"),
        ("0 3 13 * *", "on the 13th of every month at 03:00"),
        ("0 */6 * * *", "every 6 hours at minute 0"),
        ("5 * * * *", "every hour at minute 5"),
        ("*/15 * * * *", "every 15 minutes"),
        ("0 2 * 1 *", "cron 0 2 * 1 *"),
        ("0 2,14 * * *", "cron 0 2,14 * * *"),
    ],
)
def test_describe_cron_in_words(expression: str, words: str) -> None:
    assert describe_cron(expression) == words
