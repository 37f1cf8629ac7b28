"""The pure core of intake.

Plain Python that decides things: routing, consent and disclosure policy,
PII detection and redaction, e-mail parsing. Nothing here imports Flask,
SQLAlchemy, dramatiq, imaplib, smtplib or an HTTP client; functions take
values and return decisions with reasons. ``tests/test_architecture.py``
keeps it so.
"""
