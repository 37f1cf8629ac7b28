"""Word lists and keyword patterns used by the PII detectors.

Everything here is data: keyword regular expressions (English and Spanish)
that make an otherwise ambiguous number count as personal data, the medical
lexicon, and the list of US state abbreviations used to recognise ZIP codes.
"""

from __future__ import annotations

import importlib.resources
import re

# --- keywords that make a bare number meaningful ---------------------------

SSN_KEYWORDS = re.compile(
    r"(?i:\b(?:ssn|ss\s*#|ss\s*no\.?|ss\s*number|soc\.?\s*sec\.?(?:\s*(?:no\.?|number|#))?"
    r"|social\s+security(?:\s+(?:number|no\.?|num|#|card))?|social\s*#"
    r"|social(?=\s*(?:is\b|was\b|:|no\.))"
    r"|seguro\s+social|n[uú]mero\s+de\s+seguro\s+social)(?![\w]))"
)

ABA_KEYWORDS = re.compile(
    r"(?i:\b(?:routing(?:\s+(?:number|no\.?|#))?|aba(?:\s+(?:number|no\.?|#))?|rtn"
    r"|transit(?:\s+(?:number|no\.?|#))?|n[uú]mero\s+de\s+ruta|ruta\s+bancaria)(?![\w]))"
)

BANK_KEYWORDS = re.compile(
    r"(?i:\b(?:account\s*(?:number|no\.?|num\.?|#|:)|acct\.?(?:\s*(?:number|no\.?|#))?"
    r"|bank\s+account|checking(?:\s+account)?|savings(?:\s+account)?"
    r"|n[uú]mero\s+de\s+cuenta|cuenta(?:\s+bancaria|\s+de\s+ahorros|\s+corriente)?"
    r"|iban)(?![\w]))"
)

BIRTH_KEYWORDS = re.compile(
    r"(?i:\b(?:born|birth|birthday|birthdate|b-?day|dob|d\.o\.b\.?|date\s+of\s+birth"
    r"|fecha\s+de\s+nacimiento|nacimiento|nacid[oa]s?|nac[ií]|naci[óo]|nacieron|cumpleaños|f\.\s*nac\.?)(?![\w]))"
)

# Contexts in which a number is an identifier, not personal data: they reject
# phone- and SSN-shaped numbers (and card-shaped ones with no card word nearby).
REFERENCE_KEYWORDS = re.compile(
    r"(?i:\b(?:case|order|ticket|invoice|inv|confirmation|conf|tracking|reference|ref"
    r"|claim|receipt|permit|license|licence|policy|file|record|docket|po|transaction"
    r"|part|item|serial|model|sku|product|lot|batch|account|acct|citation|violation"
    r"|application|app|registration|plate|vin|meter|parcel|complaint|request|id"
    r"|expediente|caso|pedido|factura|orden|folio|permiso|referencia|reclamaci[oó]n"
    r"|reclamo|seguimiento|rastreo|recibo|multa|citaci[oó]n|solicitud|queja|licencia"
    r"|p[oó]liza|serie|medidor|cliente|cuenta|n[uú]mero\s+de\s+caso)"
    r"(?:\s*(?:number|no\.?|num\.?|n[uú]m\.?|#|id|n[uú]mero))?(?![\w]))"
)

# Identifiers that a Luhn-valid card-shaped number can be ("tracking number", "serial"):
# the reference words without "account" (a card number is an account number).
CARD_REJECT_KEYWORDS = re.compile(
    r"(?i:\b(?:case|order|ticket|invoice|confirmation|tracking|reference|ref|claim|receipt"
    r"|permit|policy|docket|transaction|serial|model|sku|product|lot|batch|meter|parcel"
    r"|citation|expediente|caso|pedido|factura|orden|folio|permiso|referencia|reclamaci[oó]n"
    r"|seguimiento|rastreo|recibo|p[oó]liza|serie|medidor)"
    r"(?:\s*(?:number|no\.?|num\.?|n[uú]m\.?|#|id|n[uú]mero))?(?![\w]))"
)

# The words right before a phone-shaped number that make it an identifier (the phone
# detector's shorter list: it is searched at every phone match).
PHONE_REFERENCE_KEYWORDS = re.compile(
    r"(?i:\b(?:case|order|ticket|invoice|inv|confirmation|conf|tracking|reference|ref"
    r"|claim|receipt|permit|license|licence|policy|file|record|docket|po|transaction"
    r"|part|item|serial|model|sku|product|lot|batch|account|acct|expediente|caso|pedido"
    r"|factura|orden|folio|seguimiento|referencia|n[uú]mero\s+de\s+caso)"
    r"(?:\s*(?:number|no\.?|num\.?|#|id))?(?![\w]))"
)

# Words that make a card-shaped number a card.
CARD_KEYWORDS = re.compile(
    r"(?i:\b(?:card|visa|mastercard|master\s+card|amex|american\s+express|discover|jcb"
    r"|diners|credit|debit|tarjeta|cr[eé]dito|d[eé]bito|charged?|paid|pagu[eé]|cobr\w*)(?![\w]))"
)

# Words that make an account a bank account (they outweigh NON_BANK_ACCOUNT nearer the number).
BANK_KEYWORDS_STRONG = re.compile(
    r"(?i:\b(?:bank|banking|checking|savings|routing|deposit|direct\s+deposit|credit\s+union"
    r"|iban|banco|bancaria|ahorros|cheques|dep[oó]sito|cooperativa)(?![\w]))"
)

# Qualifiers that make an "account number" a customer / utility account, not a bank one.
NON_BANK_ACCOUNT = re.compile(
    r"(?i:\b(?:customer|utility|electric|electricity|water|gas|sewer|phone|cable|internet"
    r"|library|online|loyalty|member|membership|portal|user|web|toll|e-?zpass|bill|billing"
    r"|cliente|luz|agua|electricidad|tel[eé]fono|biblioteca|usuario|factura)(?![\w]))"
)

# Record numbers of the form EX-2026-000123 (letters, four-digit year, digits).
RECORD_NUMBER = re.compile(r"(?<![\w-])[A-Za-z]{1,8}-?[0-9]{4}-[0-9]{3,}(?![\w])")

GENDER = re.compile(
    r"(?i:\b(?:gender|sex|sexo|g[eé]nero)\s*(?:[:=/-]\s*|\s+(?:is|es)\s+|\s+)"
    r"(?P<value>male|female|man|woman|m|f|masculino|femenino|hombre|mujer)(?![\w]))"
    r"|(?i:\b(?:i\s+am|i'm|soy)\s+(?:an?|una?)\s+(?:[0-9]{1,3}[- ]year[- ]old\s+)?"
    r"(?P<value2>male|female|man|woman|hombre|mujer)(?![\w]))"
)

ZIP_KEYWORD = re.compile(
    r"(?i:\b(?:zip(?:\s*code)?|postal\s+code|c[oó]digo\s+postal)\s*(?:[:#]\s*|is\s+|es\s+)?)"
    r"(?P<zip>[0-9]{5}(?:-[0-9]{4})?)(?![\w-])"
)

US_STATES = (
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT "
    "NE NV NH NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR GU VI"
).split()

STATE_NAMES = (
    "Alabama|Alaska|Arizona|Arkansas|California|Colorado|Connecticut|Delaware|Florida"
    "|Georgia|Hawaii|Idaho|Illinois|Indiana|Iowa|Kansas|Kentucky|Louisiana|Maine"
    "|Maryland|Massachusetts|Michigan|Minnesota|Mississippi|Missouri|Montana|Nebraska"
    "|Nevada|New\\s+Hampshire|New\\s+Jersey|New\\s+Mexico|New\\s+York|North\\s+Carolina"
    "|North\\s+Dakota|Ohio|Oklahoma|Oregon|Pennsylvania|Rhode\\s+Island|South\\s+Carolina"
    "|South\\s+Dakota|Tennessee|Texas|Utah|Vermont|Virginia|Washington|West\\s+Virginia"
    "|Wisconsin|Wyoming|Puerto\\s+Rico"
)

STATE_ZIP = re.compile(
    r"\b(?:" + "|".join(US_STATES) + "|" + STATE_NAMES + r")\.?,?\s+"
    r"(?P<zip>[0-9]{5}(?:-[0-9]{4})?)(?![\w-])"
)

# --- lexicons kept as data files (intake/defaults/pii/*.txt) ------------------------
#
# Medical terms, password / PIN / login phrasing and maiden-name phrasing, English and
# Spanish. Each file notes its source in its header. They are read once, when this
# module is imported (the module is the cache).

_DATA = importlib.resources.files("intake") / "defaults" / "pii"


def load_list(name: str) -> tuple[str, ...]:
    """The non-comment, non-blank lines of ``intake/defaults/pii/<name>``."""
    text = (_DATA / name).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines()
                 if line.strip() and not line.lstrip().startswith("#"))


def _medical() -> tuple[tuple[str, ...], frozenset[str]]:
    terms: list[str] = []
    ambiguous: set[str] = set()
    for name in ("medical_en.txt", "medical_es.txt"):
        for line in load_list(name):
            term = line.lstrip("~").strip()
            if line.startswith("~"):
                ambiguous.add(term.casefold())
            if term not in terms:
                terms.append(term)
    return tuple(terms), frozenset(ambiguous)


# Terms that reveal health information (P6 "medical details").  Findings are
# severity "review": flagged for staff attention, redacted only in PUBLIC.
# AMBIGUOUS_MEDICAL ("stroke", "depression", "cancer" ...) count only with a personal
# context nearby (PERSONAL_CONTEXT).
MEDICAL_TERMS, AMBIGUOUS_MEDICAL = _medical()


def _case_sensitive(term: str) -> bool:
    """Abbreviations and brand spellings (HIV, VIH, PTSD, PrEP, OxyContin) are matched
    case-sensitively: "aids to navigation" is not AIDS."""
    return sum(1 for c in term if c.isupper()) >= 2


def _term_pattern(term: str) -> str:
    body = re.escape(term).replace(r"\ ", r"\s+").replace("'", "['’]?")
    if _case_sensitive(term):
        return body
    return "(?i:" + body + ")"


MEDICAL = re.compile(
    r"(?<![\w])(?:"
    + "|".join(_term_pattern(t) for t in sorted(MEDICAL_TERMS, key=len, reverse=True))
    + r")(?![\w])"
)

# Who the health detail is about: the writer or someone close ("my", "I have", "mi
# hijo", "tengo", "padece").
PERSONAL_CONTEXT = re.compile(
    r"(?i:\b(?:i|i['’]m|i['’]ve|me|my|mine|myself|we|our|he|she|his|her|him|son|daughter"
    r"|wife|husband|child|kid|mother|mom|father|dad|baby|partner|patient|diagnosed|suffers?"
    r"|has|have|had|living\s+with|mi|mis|me|yo|tengo|tiene|tenemos|padezco|padece|sufro"
    r"|sufre|estoy|est[aá]|soy|es|hijo|hija|esposo|esposa|madre|padre|mam[aá]|pap[aá]"
    r"|beb[eé]|diagnosticaron|diagnosticad[oa])\b)"
)


def _phrasing(names: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """``{"secret": (...), "pin": (...), "login": (...)}`` from "label: phrase" lines."""
    out: dict[str, list[str]] = {}
    for name in names:
        for line in load_list(name):
            label, _, phrase = line.partition(":")
            out.setdefault(label.strip(), []).append(phrase.strip())
    return {label: tuple(phrases) for label, phrases in out.items()}


def _alternation(phrases: tuple[str, ...]) -> str:
    return "|".join(
        re.escape(p).replace(r"\ ", r"\s+").replace("'", "['’]?").replace(r"\-", "[- ]?")
        for p in sorted(set(phrases), key=len, reverse=True))


_SECRET_PHRASING = _phrasing(("password_en.txt", "password_es.txt"))
SECRET_PHRASES = _SECRET_PHRASING["secret"]
PIN_PHRASES = _SECRET_PHRASING["pin"]
LOGIN_PHRASES = _SECRET_PHRASING["login"]
MAIDEN_PHRASES = load_list("maiden_en.txt") + load_list("maiden_es.txt")
SECRET_WORDS = _alternation(SECRET_PHRASES)
PIN_WORDS = _alternation(PIN_PHRASES)
LOGIN_WORDS = _alternation(LOGIN_PHRASES)
MAIDEN_WORDS = _alternation(MAIDEN_PHRASES)

# Words that follow "password is" / "PIN is" but are not the secret itself.
NOT_A_SECRET = frozenset(
    """
    not no wrong incorrect invalid expired locked reset working broken the a an too very
    being still correct required needed same different changed blank empty mine it that
    this for and or to of in on my your our their his her missing lost forgotten unknown
    case sensitive weak strong long short fine ok okay protected saved stored
    incorrecta incorrecto la el mi no bloqueada expirada olvidada correcta nueva vieja
    """.split()
)

# Words that are not a surname after "maiden name is".
NOT_A_NAME = frozenset(
    """
    is was the a an not unknown my her his same different none n/a na es era el la no
    required needed missing wrong incorrect correct on in of for and or it that this
    why what how who asked requested
    """.split()
)

# Words that cannot be part of a street name ("between 1998 and 2004 the road").
NOT_A_STREET_WORD = frozenset(
    """
    the a an and or of on in at to was is were are for from my our your his her their
    this that with by as people times hours days years dollars minutes miles
    """.split()
)
