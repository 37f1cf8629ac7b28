"""The helpdesk queues the bench needs, made after ``migrate``:

    python -m benchdesk.queues public
    python -m benchdesk.queues imap HOST PORT USER PASSWORD FOLDER

``public``: the queue the public ticket form files into (allow_public_submission).
``imap``: a queue that ``manage.py get_email`` reads from an IMAP folder (plain IMAP on
loopback, checked at every run: email_box_interval 0), deleting what it turned into tickets.
"""

import os
import sys

import django


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchdesk.settings")
    django.setup()
    from helpdesk.models import Queue

    if argv[0] == "public":
        Queue.objects.update_or_create(slug="public", defaults={
            "title": "Public", "allow_public_submission": True,
            "email_address": "help@examplia.gov"})
    elif argv[0] == "imap":
        host, port, user, password, folder = argv[1:6]
        Queue.objects.update_or_create(slug="mail", defaults={
            "title": "Mail", "allow_email_submission": True,
            "email_address": "info@examplia.gov", "email_box_type": "imap",
            "email_box_host": host, "email_box_port": int(port), "email_box_ssl": False,
            "email_box_user": user, "email_box_pass": password,
            "email_box_imap_folder": folder, "email_box_interval": 0})
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
