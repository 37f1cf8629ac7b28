"""intake: the contact-form and e-mail intake router for state agencies."""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from intake.runtime import Runtime
    from intake.settings import Settings

__all__ = ["create_app"]


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Flask:
    """The Flask application factory.

    ``settings`` defaults to the ``INTAKE_*`` environment. A ``runtime`` may
    be passed by ``intake serve`` (which also starts the embedded worker) or
    by tests; otherwise one is built here, without starting any thread.
    """
    # Imported here, not at module level: `import intake.core...` must not load Flask.
    from flask import Flask

    from intake.runtime import Runtime
    from intake.settings import load_settings
    from intake.web import errors, health, metrics, security, status

    if runtime is None:
        runtime = Runtime(settings or load_settings())
        if runtime.settings.broker_url is None:
            # No worker runs in this process (gunicorn's wsgi:app), and the embedded
            # broker's queue is this process's own: a message sent there would only
            # pile up. Work items wait in the database for intake serve's sweeper.
            runtime.jobs.send_messages = False
    settings = runtime.settings

    app = Flask(
        __name__,
        template_folder=str(resources.files("intake") / "templates"),
        static_folder=str(resources.files("intake") / "static"),
        instance_path=str(settings.instance_path),
    )
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=30 * 1024 * 1024,
        JSON_SORT_KEYS=False,
    )
    app.extensions["intake"] = runtime
    # Headers, the __Host- session cookie, trusted proxies; then bad input answered as
    # 4xx (before any blueprint: the bounded int converter must be in place for their rules).
    security.init_app(app, settings)
    errors.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(status.bp)
    # Each area registers its blueprint here (one call per area).
    from intake.web import csrf, forms  # Flask-WTF CSRF (public forms exempt); public forms
    csrf.init_app(app)
    forms.init_app(app)
    from intake.web import staff  # the staff inbox at /staff/ (checks its own CSRF tokens)
    staff.init_app(app)
    from intake.web import records  # the public records at /records (after the forms' Babel)
    records.init_app(app)
    from intake.web import inbound  # POST /inbound/<source>: mail pushed over HTTP
    inbound.init_app(app)
    from intake.web import chat  # Live Help at /help and /staff/help (issue 30)
    chat.init_app(app)
    csrf.csrf.exempt(chat.bp)  # no cookies: the signed chat token and the Origin check
    from intake.web import visits  # the public pages' visit counters (after Babel)
    visits.init_app(app)
    return app
