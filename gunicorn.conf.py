"""gunicorn reads this file from the working directory: the clone's ``gunicorn wsgi:app``
then runs with intake's configuration (:mod:`intake.gunicorn_conf`; an installed intake
uses ``gunicorn -c python:intake.gunicorn_conf intake.wsgi:app``)."""

from intake.gunicorn_conf import *  # noqa: F403
