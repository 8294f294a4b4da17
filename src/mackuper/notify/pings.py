"""Health-check pings in the healthchecks.io style: start, success and fail URLs.

A ping is an HTTP POST whose body is a short summary (healthchecks.io keeps it as
the ping's log). Ping URLs carry the check's token, so errors never repeat them.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from urllib.parse import urlparse

from mackuper import __version__
from mackuper.notify.channels import NotifyError

PING_KINDS = ("start", "success", "fail")
PING_TIMEOUT = 10.0


def check_ping_url(url: str) -> str | None:
    """None when `url` can be pinged; otherwise why not, in one sentence."""
    parsed = urlparse(url)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        return "A ping URL starts with http:// or https://."
    if len(url) > 2000:
        return "The URL is longer than 2000 characters."
    return None


def ping(url: str, body: str, timeout: float = PING_TIMEOUT) -> None:
    """POST `body` to `url`; raises NotifyError (without the URL) when it fails."""
    if check_ping_url(url) is not None:
        raise NotifyError("the ping URL is not an http(s) URL")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url,
        data=body.encode()[:100_000],
        method="POST",
        headers={
            "Content-Type": "text/plain; charset=utf-8",
            "User-Agent": f"mackuper/{__version__}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read(1024)
    except urllib.error.HTTPError as error:
        error.close()
        raise NotifyError(f"the server answered HTTP {error.code}") from None
    except urllib.error.URLError as error:
        reason = error.reason
        text = getattr(reason, "strerror", None) or str(reason)
        raise NotifyError(f"the server could not be reached ({text})") from None
    except (TimeoutError, OSError) as error:
        raise NotifyError(f"the ping failed ({type(error).__name__})") from None
