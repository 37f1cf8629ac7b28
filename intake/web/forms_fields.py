"""WTForms definitions of the public forms (labels and messages translated).

Plain ``wtforms.Form`` classes, not ``FlaskForm``: the public forms carry a
signed time-stamped token instead of a session-bound CSRF token, so they work
without cookies. Every field has a length limit; one-line fields refuse CR/LF.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import email_validator
from flask_babel import lazy_gettext as _l
from wtforms import Form, RadioField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from intake.core.forms import FormConfig, Question, Survey, pick

NAME_MAX = 200
EMAIL_MAX = 254
PHONE_MAX = 40
ADDRESS_MAX = 500
SUBJECT_MAX = 200
MESSAGE_MAX = 10_000
COMMENT_MAX = 5_000
ABOUT_MAX = 500

PHONE_RE = re.compile(r"^[0-9+().\- ]*(?:(?:ext|x)\.? ?[0-9]{1,6})?$", re.IGNORECASE)


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def one_line(form: Form, field: Any) -> None:
    """Names and subjects become e-mail headers downstream: no line breaks."""
    if isinstance(field.data, str) and ("\r" in field.data or "\n" in field.data):
        raise ValidationError(_l("This must be on one line."))


# C0 controls but tab, LF and CR, and DEL.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _no_controls(form: Form, field: Any) -> None:
    if isinstance(field.data, str) and _CONTROL.search(field.data):
        raise ValidationError(_l("This contains characters that cannot be accepted."))


def _phone(form: Form, field: Any) -> None:
    if field.data and not PHONE_RE.match(field.data):
        raise ValidationError(_l("Enter a telephone number using digits, spaces, + - ( )."))


# An everyday address: an ASCII local part of letters, digits, "_", "+" and "-" in runs
# joined by single dots; a domain of labels of letters and digits with single hyphens
# inside, the last label letters only. No quoting, no "--" (so no Punycode), nothing that
# Unicode normalization changes.
_EVERYDAY_ADDRESS = re.compile(
    r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@((?:[A-Za-z0-9](?:-?[A-Za-z0-9])*\.)+[A-Za-z]+)")


def everyday_address(value: str) -> bool:
    """True if ``value`` is an everyday address that ``email_validator`` accepts with the
    options :class:`EmailAddress` gives it; False means "ask email_validator", not
    "invalid". On top of the pattern, the checks of email_validator that such an address
    can still fail: at most 254 characters, 64 before the "@" and 63 a label, and not in
    a special-use domain (the library's own list, read at each call)."""
    if len(value) > 254:
        return False
    match = _EVERYDAY_ADDRESS.fullmatch(value)
    if match is None or match.start(1) > 65:  # the local part and the "@"
        return False
    domain = match.group(1).lower()
    if any(len(label) > 63 for label in domain.split(".")):
        return False
    return not any(domain == special or domain.endswith("." + special)
                   for special in email_validator.SPECIAL_USE_DOMAIN_NAMES)


class EmailAddress:
    """WTForms' ``Email`` validator without its import on every call (about a fifth of the
    address's check): ``email_validator.validate_email`` with the same options, and no DNS
    lookups (the address is checked for form, not deliverability). An everyday address
    (:func:`everyday_address`) is accepted without the library's character-by-character
    checks: 4 instead of 25 microseconds for ``bench@example.com``."""

    def __init__(self, message: Any) -> None:
        self.message = message

    def __call__(self, form: Form, field: Any) -> None:
        if field.data is None:
            raise ValidationError(self.message)
        if everyday_address(field.data):
            return
        try:
            email_validator.validate_email(field.data, check_deliverability=False,
                                           allow_smtputf8=True)
        except email_validator.EmailNotValidError:
            raise ValidationError(self.message) from None


def _length(maximum: int) -> Length:
    return Length(max=maximum, message=_l("This is too long (at most %(max)d characters).",
                                          max=maximum))


REQUIRED = _l("This field is required.")


class TopicChoices(list[SelectChoice]):
    """A select field's choices with the set of their values (for :class:`TopicField`)."""

    def __init__(self, choices: list[SelectChoice]) -> None:
        super().__init__(choices)
        self.values = frozenset(str(c.value) for c in choices)


class TopicField(SelectField):
    """``SelectField`` whose check that the answer is one of the choices is a set lookup
    when its choices are :class:`TopicChoices` (built once per form and language), not a
    ``Choice`` object built for every option of every submission. The same outcome as
    ``SelectField.pre_validate``, whose code this follows (the default ``coerce``, ``str``,
    is the only one used)."""

    def pre_validate(self, form: Form) -> None:
        choices = self.choices
        if self.process_errors or not self.validate_choice or \
                not isinstance(choices, TopicChoices) or self.coerce is not str:
            super().pre_validate(form)
            return
        if self.data not in choices.values:
            raise ValidationError(self.invalid_choice_message
                                  or self.gettext("Not a valid choice."))


class ContactForm(Form):
    name = StringField(_l("Your name"), filters=[_strip],
                       validators=[InputRequired(REQUIRED), _length(NAME_MAX), one_line,
                                   _no_controls])
    email = StringField(_l("Your e-mail address"), filters=[_strip], validators=[
        InputRequired(REQUIRED), _length(EMAIL_MAX), one_line,
        EmailAddress(_l("Enter an e-mail address like name@example.com.")),
    ])
    phone = StringField(_l("Telephone"), filters=[_strip],
                        validators=[Optional(), _length(PHONE_MAX), one_line, _phone])
    postal_address = TextAreaField(_l("Postal address"), filters=[_strip],
                                   validators=[Optional(), _length(ADDRESS_MAX), _no_controls])
    topic = TopicField(_l("Topic"), validate_choice=True,
                        validators=[InputRequired(_l("Choose a topic."))])
    subject = StringField(_l("Subject"), filters=[_strip],
                          validators=[InputRequired(REQUIRED), _length(SUBJECT_MAX), one_line,
                                      _no_controls])
    message = TextAreaField(_l("Your message"), filters=[_strip],
                            validators=[InputRequired(REQUIRED), _length(MESSAGE_MAX),
                                        _no_controls])


class FeedbackForm(Form):
    rating = RadioField(_l("How would you rate it?"), choices=[
        SelectChoice("1", _l("1 – Very poor")), SelectChoice("2", _l("2 – Poor")),
        SelectChoice("3", _l("3 – Fair")), SelectChoice("4", _l("4 – Good")),
        SelectChoice("5", _l("5 – Very good")),
    ], validators=[InputRequired(_l("Choose a rating from 1 to 5."))])
    about = StringField(_l("Which page or service is this about?"), filters=[_strip],
                        validators=[Optional(), _length(ABOUT_MAX), one_line, _no_controls])
    comment = TextAreaField(_l("Your comment"), filters=[_strip],
                            validators=[Optional(), _length(COMMENT_MAX), _no_controls])


_TOPIC_CHOICES: dict[tuple[int, str], tuple[FormConfig, TopicChoices]] = {}


def _topic_choices(config: FormConfig, lang: str) -> TopicChoices:
    """A form's topic choices in ``lang``, built once (fields only read them)."""
    cached = _TOPIC_CHOICES.get((id(config), lang))
    if cached is not None and cached[0] is config:
        return cached[1]
    choices = TopicChoices([SelectChoice("", _l("Choose a topic"))] + [
        SelectChoice(t.value, pick(t.label, lang)) for t in config.topics])
    if len(_TOPIC_CHOICES) > 256:  # configurations reloaded many times: start again
        _TOPIC_CHOICES.clear()
    _TOPIC_CHOICES[(id(config), lang)] = (config, choices)
    return choices


def contact_form(config: FormConfig, lang: str, formdata: Any = None) -> ContactForm:
    form = ContactForm(formdata=formdata)
    form.topic.choices = _topic_choices(config, lang)
    if not config.topics:
        form.topic.choices = [SelectChoice("other", _l("Something else"))]
        if formdata is None:
            form.topic.data = "other"
    return form


def feedback_form(formdata: Any = None) -> FeedbackForm:
    return FeedbackForm(formdata=formdata)


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def survey_form(survey: Survey, lang: str, formdata: Any = None) -> Form:
    """A WTForms form built from a survey definition; validation messages per question."""

    class SurveyForm(Form):
        pass

    for q in survey.questions:
        setattr(SurveyForm, q.id, _question_field(q, lang))
    return SurveyForm(formdata=formdata)


def _question_field(q: Question, lang: str) -> Any:
    label = pick(q.label, lang)
    required = [InputRequired(REQUIRED)] if q.required else [Optional()]
    if q.type == "text":
        return TextAreaField(label, filters=[_strip],
                             validators=[*required, _length(q.max_length), _no_controls])
    if q.type == "multiple":
        validators: list[Any] = [InputRequired(_l("Choose at least one."))] if q.required else []
        return MultiCheckboxField(label, choices=[SelectChoice(c.value, pick(c.label, lang))
                                                  for c in q.choices], validators=validators)
    if q.type == "scale":
        low, high = pick(q.low, lang), pick(q.high, lang)
        choices = [SelectChoice(str(i), str(i)) for i in range(1, 6)]
        if low:
            choices[0] = SelectChoice("1", f"1 – {low}")
        if high:
            choices[4] = SelectChoice("5", f"5 – {high}")
        return RadioField(label, choices=choices, validate_choice=True, validators=[
            InputRequired(_l("Choose a number from 1 to 5."))] if q.required else [Optional()])
    return RadioField(label, choices=[SelectChoice(c.value, pick(c.label, lang))
                                      for c in q.choices],
                      validate_choice=True,
                      validators=[InputRequired(_l("Choose one."))] if q.required else
                      [Optional()])


def first_errors(form: Form) -> dict[str, str]:
    """Field name -> its first error message, in form order."""
    out: dict[str, str] = {}
    for f in form:
        if f.errors:
            errors = f.errors if isinstance(f.errors, list | tuple) else list(f.errors)
            out[f.name] = str(errors[0])
    return out


def survey_hints(survey: Survey, lang: str) -> Mapping[str, str]:
    return {q.id: pick(q.hint, lang) for q in survey.questions if q.hint}
