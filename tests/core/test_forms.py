"""The pure decisions of the public forms: configuration, surveys, tokens, origins, P6."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from intake.core.forms import (
    FormsConfigError,
    check_form_token,
    load_forms_config,
    load_survey,
    make_form_token,
    origin_allowed,
    origin_of,
    safe_next,
    validate_survey_answers,
)
from intake.core.pii import detect, warning_kinds
from intake.services.forms import load_forms_file, packaged_forms_path

KEY = b"k" * 32
SURVEY_FILE = packaged_forms_path().parent / "surveys" / "service_satisfaction.yaml"


def _survey_data() -> dict:
    return yaml.safe_load(SURVEY_FILE.read_text())


def test_packaged_forms_file_has_the_three_default_slugs() -> None:
    config = load_forms_file(packaged_forms_path())
    assert {"contact", "feedback", "survey"} <= set(config.forms)
    assert config.forms["contact"].attachments.allowed
    assert config.forms["survey"].survey is not None
    assert len(config.forms["survey"].survey.questions) == 5
    # Every language's consent text is its own version.
    assert config.consent_for("en").version != config.consent_for("es").version
    assert config.consent_by_version(config.consent_for("es").version) == config.consent_for("es")


def test_forms_file_errors_are_all_reported(tmp_path: Path) -> None:
    data = yaml.safe_load(packaged_forms_path().read_text())
    data["forms"][0]["allowed_origins"] = ["https://ok.example", "not an origin",
                                           "https://x.example/path"]
    data["forms"][1]["kind"] = "poll"
    data["forms"][2]["survey"] = "surveys/missing.yaml"
    data["consent"]["es"]["version"] = data["consent"]["en"]["version"]
    path = tmp_path / "forms.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(FormsConfigError) as caught:
        load_forms_file(path)
    text = "\n".join(caught.value.errors)
    assert "'not an origin' is not an origin" in text
    assert "'https://x.example/path' is not an origin" in text
    assert "form 'feedback': kind must be one of" in text
    assert "form 'survey': survey must name a survey file that exists" in text
    assert "each language's consent text needs its own version" in text
    assert all(line.startswith(str(path)) for line in caught.value.errors)


def test_survey_yaml_validation_names_each_problem() -> None:
    data = _survey_data()
    bad = copy.deepcopy(data)
    bad["questions"][0]["type"] = "dropdown"
    bad["questions"][1]["choices"] = [{"value": "Web Site", "label": "x"}]
    bad["questions"][2]["choices"] = [{"value": "a", "label": "a"}]
    bad["questions"].append(dict(bad["questions"][3]))  # duplicate id "ease"
    bad["questions"][4]["label"] = {"fr": "Quoi ?"}
    with pytest.raises(FormsConfigError) as caught:
        load_survey(bad, "s.yaml")
    text = "\n".join(caught.value.errors)
    assert "question 'service': type must be one of single, multiple, scale, text" in text
    assert "question 'channels': choices[0].value: must be lower-case" in text
    assert "question 'satisfaction': choices only apply to single and multiple" in text
    assert "question 'ease': duplicate id" in text
    assert "unknown language 'fr'" in text
    assert load_survey(data).id == "service-satisfaction"


def test_survey_answers_are_structured_and_checked() -> None:
    survey = load_survey(_survey_data())
    ok = validate_survey_answers(survey, {
        "service": ["other"], "channels": ["phone", "mail", "phone"], "satisfaction": ["4"],
        "improve": ["  More evening hours  "],
    })
    assert ok.errors == {}
    assert ok.answers == {"service": "other", "channels": ["phone", "mail"], "satisfaction": 4,
                          "ease": None, "improve": "More evening hours"}
    bad = validate_survey_answers(survey, {
        "channels": ["fax"], "satisfaction": ["6"], "ease": ["1", "2"], "improve": ["x" * 2001],
    })
    assert bad.errors == {"service": "required", "channels": "choice", "satisfaction": "choice",
                          "ease": "choice", "improve": "too-long"}


def test_form_token_signed_timed_and_bound_to_the_form() -> None:
    token = make_form_token(KEY, "contact", 1_000_000)
    ok = check_form_token(KEY, "contact", token, 1_000_010, min_seconds=3, max_age=3600)
    assert ok.ok and ok.reason == "ok"

    def reason(tok: str | None, now: float = 1_000_010, slug: str = "contact") -> str:
        return check_form_token(KEY, slug, tok, now, min_seconds=3, max_age=3600).reason

    assert reason(None) == "missing"
    assert reason("") == "missing"
    assert reason("abc") == "malformed"
    assert reason(token, slug="feedback") == "bad-signature"
    assert reason(make_form_token(b"other" * 8, "contact", 1_000_000)) == "bad-signature"
    issued, mac = token.split(".")
    assert reason(f"{int(issued) + 5}.{mac}") == "bad-signature"  # cannot age a token by hand
    assert reason(token, now=1_000_001) == "too-fast"
    assert reason(token, now=1_000_000 + 3601) == "expired"


@pytest.mark.parametrize("url, allowed", [
    ("https://www.examplia.gov/thanks", True),
    ("https://WWW.Examplia.gov:443/thanks?x=1", True),
    ("http://www.examplia.gov/thanks", False),
    ("https://www.examplia.gov.evil.example/", False),
    ("https://www.examplia.gov@evil.example/", False),
    ("https://evil.example/?https://www.examplia.gov", False),
    ("//evil.example/", False),
    ("/local/path", False),
    ("javascript:alert(1)", False),
    ("https://www.examplia.gov\r\nLocation: https://evil.example", False),
    ("https://www.examplia.gov:8443/", False),
])
def test_next_only_goes_to_an_allowed_origin(url: str, allowed: bool) -> None:
    assert (safe_next(url, ["https://www.examplia.gov"]) == url) is allowed


def test_origins_are_normalised() -> None:
    assert origin_of("https://A.example:443/x") == "https://a.example"
    assert origin_of("http://a.example:8080") == "http://a.example:8080"
    assert origin_of("ftp://a.example") is None
    assert origin_of("null") is None
    assert origin_allowed("http://127.0.0.1:9000", ["http://127.0.0.1:9000"])
    assert not origin_allowed("http://127.0.0.1:9001", ["http://127.0.0.1:9000"])


def sensitive_kinds(texts: list[str], key: bytes) -> list[str]:
    """What the form's warning shows: the P6 kinds among the detector's findings."""
    return warning_kinds([f for text in texts for f in detect(text, key=key)])


def test_sensitive_kinds_find_p6_data_only() -> None:
    assert sensitive_kinds(["My SSN is 123-45-6789"], KEY) == ["ssn"]
    assert sensitive_kinds(["card 4111 1111 1111 1111", "I was born on March 3, 1970"],
                           KEY) == ["card", "birth_date"]
    # An e-mail address or phone number is personal data but not a P6 warning.
    assert sensitive_kinds(["write to me at ana@example.com or 860-555-0142"], KEY) == []
    assert sensitive_kinds(["", "The trail at Lake Park is closed"], KEY) == []


def test_load_forms_config_rejects_non_mapping() -> None:
    with pytest.raises(FormsConfigError):
        load_forms_config(["not", "a", "mapping"])


EMAIL_CASES = [
    "bench@example.com", "Name.Surname+tag@agency.ky.gov", "josé@ejemplo.es",
    "用户@例子.广告", "a@b.co", "\"quoted local\"@example.com", "user@[192.0.2.1]",
    "", "plain", "@example.com", "user@", "user@localhost", "user@example..com",
    "user@-example.com", "user.@example.com", ".user@example.com", "us er@example.com",
    "user@example.com.", "x" * 65 + "@example.com", "user@" + "a" * 250 + ".com",
    "user@example.invalid", "user@example.test", "user\u200b@example.com", "user@ex_ample.com",
]


@pytest.mark.parametrize("address", EMAIL_CASES)
def test_the_email_check_decides_as_wtforms_email_with_the_same_options(address: str) -> None:
    from wtforms import Form, StringField
    from wtforms.validators import Email

    from intake.web.forms_fields import EmailAddress

    class Reference(Form):
        email = StringField(validators=[Email(message="bad", check_deliverability=False,
                                              allow_smtputf8=True)])

    class Ours(Form):
        email = StringField(validators=[EmailAddress("bad")])

    def verdict(form_class: type[Form]) -> tuple[bool, list[str]]:
        form = form_class(data={"email": address})
        return form.validate(), list(form.email.errors)

    assert verdict(Ours) == verdict(Reference)


EVERYDAY_EDGES = [
    "a" * 64 + "@example.com", "a" * 65 + "@example.com",
    "a@" + "b" * 63 + ".com", "a@" + "b" * 64 + ".com",
    "a" * 64 + "@" + ".".join(["b" * 61] * 3) + ".ccc",  # 254 characters
    "a" * 64 + "@" + ".".join(["b" * 61] * 3) + ".cccc",  # 255
    "user@example.test", "user@EXAMPLE.TEST", "user@mail.invalid", "user@x.local",
    "user@x.localhost", "user@x.onion", "user@home.arpa", "user@x.y.arpa", "user@latest.com",
    "user@x.tests", "a--b@example.com", "a@b-c.example.com", "a_b+c-d.e@sub.example.org",
    "user@ab--cd.com", "user@a-.com", "user@-a.com", "user@a.c0m", "user@a.b-c", "user@a..com",
    ".user@a.com", "us..er@a.com", "user.@a.com", "user@xn--bcher-kva.com",
]


def _accepted_if_the_shortcut_takes_it(address: str) -> None:
    import email_validator

    from intake.web.forms_fields import everyday_address

    if everyday_address(address):  # raises if email_validator refuses it
        email_validator.validate_email(address, check_deliverability=False, allow_smtputf8=True)


@pytest.mark.parametrize("address", EMAIL_CASES + EVERYDAY_EDGES)
def test_an_everyday_address_is_one_email_validator_accepts(address: str) -> None:
    _accepted_if_the_shortcut_takes_it(address)


def test_the_everyday_shortcut_takes_the_common_addresses_and_the_edges_as_expected() -> None:
    from intake.web.forms_fields import everyday_address

    taken = [a for a in EVERYDAY_EDGES if everyday_address(a)]
    assert taken == [EVERYDAY_EDGES[i] for i in (0, 2, 4, 14, 15, 16, 17, 18)]


@given(st.from_regex(r"[A-Za-z0-9_+.-]{1,70}@(?:[A-Za-z0-9-]{0,66}\.){1,4}[A-Za-z0-9-]{0,8}",
                     fullmatch=True)
       | st.from_regex(r"[a-z]{1,3}@(?:[a-z]{1,3}\.){1,2}(?:test|invalid|local|localhost|onion|"
                       r"arpa|[a-z]{1,5})", fullmatch=True))
@settings(max_examples=400, deadline=None)
def test_everything_the_shortcut_takes_email_validator_accepts(address: str) -> None:
    _accepted_if_the_shortcut_takes_it(address)


TOPIC_CASES: list[list[str] | None] = [
    None, [], [""], ["parks"], ["other"], ["Parks"], ["parks "], ["nope"], ["parks", "x"],
    ["x", "parks"], ["\x00"], ["0"],
]


@pytest.mark.parametrize("values", TOPIC_CASES)
def test_the_topic_check_decides_as_wtforms_select_field(values: list[str] | None) -> None:
    """TopicField looks the answer up in a set: the same verdict and messages as
    WTForms' own SelectField over the same choices."""
    from werkzeug.datastructures import MultiDict
    from wtforms import Form, SelectField
    from wtforms.fields.choices import SelectChoice
    from wtforms.validators import InputRequired

    from intake.web.forms_fields import TopicChoices, TopicField

    choices = [SelectChoice("", "Choose"), SelectChoice("parks", "Parks"),
               SelectChoice("other", "Other")]

    class Reference(Form):
        topic = SelectField(validate_choice=True, validators=[InputRequired("pick")])

    class Ours(Form):
        topic = TopicField(validate_choice=True, validators=[InputRequired("pick")])

    def verdict(form_class: type[Form], given: list[SelectChoice]) -> tuple[bool, list[str]]:
        formdata = MultiDict([("topic", v) for v in values]) if values is not None else None
        form = form_class(formdata=formdata)
        form.topic.choices = given
        return form.validate(), [str(e) for e in form.topic.errors]

    expected = verdict(Reference, choices)
    assert verdict(Ours, TopicChoices(choices)) == expected
    assert verdict(Ours, choices) == expected  # plain choices: WTForms' own check
