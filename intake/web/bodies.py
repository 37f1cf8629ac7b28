"""Reading a request body with a hard limit, whatever its framing.

``request.get_data()`` leaves the limit to werkzeug's stream wrapper, which
depends on the server (``wsgi.input_terminated``) and on ``Content-Length``
being there. :func:`read_body` reads ``request.stream`` in bounded chunks and
answers 413 as soon as more than ``limit`` bytes arrive, for a declared length
and a chunked body alike; it never holds more than ``limit + 1`` bytes.
"""

from __future__ import annotations

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

CHUNK = 64 * 1024


def read_body(limit: int) -> bytes:
    """The whole body of this request; RequestEntityTooLarge (413) past ``limit`` bytes."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise RequestEntityTooLarge()
    # One byte of headroom: werkzeug's own cap then never fires before ours does.
    request.max_content_length = limit + 1
    stream = request.stream
    body = bytearray()
    while True:
        piece = stream.read(min(CHUNK, limit + 1 - len(body)))
        if not piece:
            break
        body += piece
        if len(body) > limit:
            raise RequestEntityTooLarge()
    data = bytes(body)
    # request.form, request.files and request.get_data() then parse these bytes (werkzeug
    # reads its cached body instead of the stream, which is consumed).
    request._cached_data = data  # noqa: SLF001 - werkzeug's cache of get_data()
    return data
