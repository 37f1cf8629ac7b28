"""django-helpdesk as a baseline of the benches (see baseline.py and bench/README.md)."""
