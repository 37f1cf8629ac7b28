"""Plain, accessible error pages (JSON for JSON clients); never a stack trace."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, InternalServerError

from intake.logsafe import describe

log = logging.getLogger("intake.web")

MESSAGES = {
    400: "The request could not be understood.",
    404: "There is nothing here. If you followed a link, it may be mistyped or expired.",
    405: "That action is not possible here.",
    413: "What you sent is too large.",
    429: "Too many requests. Please wait a little and try again.",
}


def init_app(app: Flask) -> None:
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
