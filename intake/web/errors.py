"""Plain, accessible error pages (JSON for JSON clients); never a stack trace.

Bad input is the client's error, never the server's (OWASP ASVS 5.0 V2.2, V16.5):
an integer in a URL beyond what the database holds (64-bit) matches no route
(404) instead of overflowing a query; JSON nested deeper than Python's parser
recurses answers 400 instead of a RecursionError.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify, render_template, request
from flask.json.provider import DefaultJSONProvider
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.routing import IntegerConverter

from intake.logsafe import describe

log = logging.getLogger("intake.web")

MESSAGES = {
    400: "The request could not be understood.",
    404: "There is nothing here. If you followed a link, it may be mistyped or expired.",
    405: "That action is not possible here.",
    413: "What you sent is too large.",
    429: "Too many requests. Please wait a little and try again.",
}


#: The largest id any table holds (a signed 64-bit BIGINT).
MAX_ID = 2**63 - 1


class BoundedIntegerConverter(IntegerConverter):
    """``<int:...>`` that matches only what fits a database id (at most :data:`MAX_ID`
    unless a rule says otherwise): ``/staff/entries/99999999999999999999`` is a 404."""

    def __init__(self, map: Any, fixed_digits: int = 0, min: int | None = None,  # noqa: A002
                 max: int | None = MAX_ID, signed: bool = False) -> None:  # noqa: A002
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


class SafeJSONProvider(DefaultJSONProvider):
    """Flask's JSON, where a document nested too deeply to parse is invalid JSON (a
    ``ValueError``: ``request.get_json`` answers 400) rather than a RecursionError."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


def init_app(app: Flask) -> None:
    """Error pages, and bad input answered as 4xx. Call before registering blueprints:
    their ``<int:>`` rules take the converter in place when they are added."""
    app.url_map.converters["int"] = BoundedIntegerConverter
    app.json = SafeJSONProvider(app)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> ResponseReturnValue:
        code = error.code or 500
        title = error.name
        message = MESSAGES.get(code, error.description or title)
        if request.accept_mimetypes.best == "application/json":
            return jsonify({"error": title, "message": message}), code
        return render_template("error.html", title=title, message=message), code

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> ResponseReturnValue:
        log.error("unhandled %s on %s %s", describe(error), request.method,
                  request.url_rule.rule if request.url_rule else "?")
        return _http_error(InternalServerError())
