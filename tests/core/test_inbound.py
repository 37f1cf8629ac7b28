"""The inbound sources file and the Amazon SNS URL pattern (pure checks)."""

from __future__ import annotations

import pytest

from intake.core.inbound import (
    InboundConfigError,
    load_inbound_config,
    secret_variable,
    sns_url_allowed,
)
from intake.outbound.sns import https_get


@pytest.mark.parametrize("url", [
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem",
    "https://sns.eu-central-1.amazonaws.com/SimpleNotificationService-abc.pem",
    "https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-abc.pem",
    "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem",
])
def test_sns_certificate_urls_of_amazon_are_allowed(url: str) -> None:
    assert sns_url_allowed(url, certificate=True)


@pytest.mark.parametrize("url", [
    "http://sns.us-east-1.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com.evil.example/x.pem",
    "https://evilsns.us-east-1.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com@evil.example/x.pem",
    "https://user@sns.us-east-1.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com:444/x.pem",
    "https://sns.us-east-1.amazonaws.com/a/../x.pem",
    "https://sns.us-east-1.amazonaws.com/x.pem?redirect=https://evil.example",
    "https://sns.us-east-1.amazonaws.com/x.pem#frag",
    "https://sns.us-east-1.amazonaws.com/x.txt",
    "https://sns.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com\\@evil.example/x.pem",
    "https://[::1]/x.pem",
    "",
])
def test_other_certificate_urls_are_refused_and_never_fetched(url: str) -> None:
    assert not sns_url_allowed(url, certificate=True)
    with pytest.raises(ValueError):
        https_get(url, certificate=True)


def test_a_subscribe_url_must_be_an_sns_confirmation() -> None:
    good = ("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"
            "&TopicArn=arn:aws:sns:us-east-1:1:t&Token=x")
    assert sns_url_allowed(good, certificate=False)
    assert not sns_url_allowed(good.replace("sns.us-east-1.amazonaws.com", "evil.example"),
                               certificate=False)
    assert not sns_url_allowed("https://sns.us-east-1.amazonaws.com/?Action=Publish",
                               certificate=False)


@pytest.mark.parametrize(("data", "secrets", "message"), [
    ({"sources": [{"name": "a", "format": "raw", "secret": "x" * 20}]}, {},
     "secrets never go in this file"),
    ({"sources": [{"name": "a", "format": "raw"}]}, {}, "INTAKE_INBOUND_SECRET_A"),
    ({"sources": [{"name": "a", "format": "raw"}]}, {"a": b"short"}, "at least 16 bytes"),
    ({"sources": [{"name": "Bad Name", "format": "raw"}]}, {}, "lowercase"),
    ({"sources": [{"name": "a", "format": "smtp"}]}, {}, "format must be one of"),
    ({"sources": [{"name": "a", "format": "ses-sns"}]}, {}, "needs topic_arns"),
    ({"sources": [{"name": "a", "format": "sendgrid"}]}, {"a": b"not a key"},
     "SendGrid's verification key"),
    ({"sources": [{"name": "a", "format": "raw", "max_bytes": 0}]}, {"a": b"s" * 20},
     "max_bytes must be a positive"),
    ({"sources": [{"name": "a", "format": "raw"}, {"name": "a", "format": "raw"}]},
     {"a": b"s" * 20}, "named twice"),
    ({"sources": [{"name": "a", "format": "raw", "colour": "red"}]}, {"a": b"s" * 20},
     "unknown key"),
    ([], {}, "a list 'sources'"),
])
def test_bad_sources_files_are_refused_with_the_reason(data: object, secrets: dict[str, bytes],
                                                       message: str) -> None:
    with pytest.raises(InboundConfigError, match=message):
        load_inbound_config(data, secrets)


def test_secret_variable_names() -> None:
    assert secret_variable("mailgun-mime") == "INTAKE_INBOUND_SECRET_MAILGUN_MIME"
