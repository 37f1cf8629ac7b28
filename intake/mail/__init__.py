"""E-mail intake: mailbox configuration, the IMAP poller and the `poll`/`ingest` commands."""
