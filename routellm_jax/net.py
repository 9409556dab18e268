"""A reachability probe for download sources, on the standard library alone.

The Hugging Face client retries connection errors with back-off for tens of seconds, so callers
that can fall back to another source (the encoder fetcher, the Arena reader) first send one short
request. It must not need an optional package: the README's first command runs on a bare install.
"""

from __future__ import annotations

import urllib.error
import urllib.request


def probe(url: str, timeout: float) -> None:
    """One ``HEAD`` request, no retries; raise ``OSError`` naming ``url`` if nothing answers.

    Any HTTP answer, a 401 or 404 included, means the host is reachable: the real download then
    reports the precise problem.
    """
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            pass
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise OSError(f"{url} unreachable ({type(err).__name__}: {reason})") from err
