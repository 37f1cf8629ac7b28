"""Django's manage.py for the helpdesk baseline (run with the helpdesk venv's python)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchdesk.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
