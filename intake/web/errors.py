"""Plain, accessible error pages (JSON for JSON clients); never a stack trace.

Bad input is the client's error, never the server's (OWASP ASVS 5.0 V2.2, V16.5):
an integer in a URL beyond what the database holds (64-bit) matches no route
(404) instead of overflowing a query; JSON nested deeper than Python's parser
recurses answers 400 instead of a RecursionError; a NUL in a URL's text part (which
PostgreSQL refuses in a parameter) matches no route (404).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, g, jsonify, render_template, request
from flask.json.provider import DefaultJSONProvider
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.routing import IntegerConverter, UnicodeConverter

from intake.logsafe import describe
from intake.web.language import request_language, use_language

log = logging.getLogger("intake.web")

# Titles and messages, marked for translation (babel.cfg): the page is in the request's
# language (intake.web.language.request_language).
TITLES = {
    400: _l("Bad request"),
    403: _l("Not allowed"),
    404: _l("Page not found"),
    405: _l("Not possible here"),
    413: _l("Too large"),
    415: _l("Not a form we can read"),
    422: _l("Please check what you sent"),
    429: _l("Too many requests"),
    500: _l("Something went wrong on our side"),
}
MESSAGES = {
    400: _l("The request could not be understood."),
    403: _l("This request is not allowed here."),
    404: _l("There is nothing here. If you followed a link, it may be mistyped or expired."),
    405: _l("That action is not possible here."),
    413: _l("What you sent is too large."),
    415: _l("What was sent is not in a form we can read."),
    422: _l("What you sent could not be accepted. Please check it and try again."),
    429: _l("Too many requests. Please wait a little and try again."),
    500: _l("Your request could not be completed. Nothing you sent was lost: please try "
            "again in a few minutes."),
}


#: The largest id any table holds (a signed 64-bit BIGINT).
MAX_ID = 2**63 - 1


class BoundedIntegerConverter(IntegerConverter):
    """``<int:...>`` that matches only what fits a database id (at most :data:`MAX_ID`
    unless a rule says otherwise): ``/staff/entries/99999999999999999999`` is a 404."""

    def __init__(self, map: Any, fixed_digits: int = 0, min: int | None = None,  # noqa: A002
                 max: int | None = MAX_ID, signed: bool = False) -> None:  # noqa: A002
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


class NulFreeConverter(UnicodeConverter):
    """``<name>`` and ``<string:name>`` that never match a NUL character:
    ``/records/%00`` is a 404, not a database error."""

    def __init__(self, map: Any, minlength: int = 1, maxlength: int | None = None,  # noqa: A002
                 length: int | None = None) -> None:
        super().__init__(map, minlength=minlength, maxlength=maxlength, length=length)
        self.regex = self.regex.replace("[^/]", "[^/\\x00]")


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
    app.url_map.converters["default"] = NulFreeConverter
    app.url_map.converters["string"] = NulFreeConverter
    app.json = SafeJSONProvider(app)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> ResponseReturnValue:
        code = error.code or 500
        if request.accept_mimetypes.best == "application/json":
            return jsonify({"error": error.name,
                             "message": str(MESSAGES.get(code, error.description or error.name))
                             }), code
        # The staff pages are in English unless they chose a language (g.page_lang).
        staff = request.blueprint in ("staff", "retention") or request.path.startswith(
            ("/staff", "/retention"))
        lang = use_language("en" if staff and not g.get("page_lang")
                            else request_language())
        title = str(TITLES.get(code, error.name))
        message = str(MESSAGES.get(code, error.description or title))
        return render_template("error.html", title=title, message=message, lang=lang), code

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> ResponseReturnValue:
        log.error("unhandled %s on %s %s", describe(error), request.method,
                  request.url_rule.rule if request.url_rule else "?")
        return _http_error(InternalServerError())
