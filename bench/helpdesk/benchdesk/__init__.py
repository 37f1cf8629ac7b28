"""A Django project serving django-helpdesk as intake's benchmark baseline (issue 28).

It runs only in the helpdesk venv that ``bench/helpdesk/baseline.py`` builds outside the
repository; nothing of helpdesk's own code is in this repository.
"""
