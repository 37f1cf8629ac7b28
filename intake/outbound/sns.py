"""GETs to Amazon SNS for the inbound push (:mod:`intake.web.inbound`): nothing personal.

Two requests only, both to ``https://sns.<region>.amazonaws.com/`` URLs that
:func:`intake.core.inbound.sns_url_allowed` accepted before they get here: the
signing certificate of a notification, and a subscription's confirmation link.
No redirects, a timeout and a size limit on the answer.
"""

from __future__ import annotations

import urllib.error
import urllib.request

from intake.core.failures import TransientError
from intake.core.inbound import sns_url_allowed
from intake.outbound.webhook import _NoRedirect

MAX_ANSWER = 64 * 1024


def https_get(url: str, *, certificate: bool, timeout: float = 10.0) -> bytes:
    """The body of a GET of an Amazon SNS ``url``; TransientError when it cannot be had."""
    if not sns_url_allowed(url, certificate=certificate):
        raise ValueError("not an Amazon SNS URL")
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(  # noqa: S310 - https, checked above
        url, headers={"User-Agent": "intake-inbound/1"})
    try:
        with opener.open(request, timeout=timeout) as response:
            body: bytes = response.read(MAX_ANSWER + 1)
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        raise TransientError(f"SNS unreachable: {type(exc).__name__}",
                             reason="could not reach Amazon SNS") from None
    if len(body) > MAX_ANSWER:
        raise TransientError("SNS answer too large", reason="Amazon SNS answered too much")
    return body
