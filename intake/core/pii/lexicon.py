"""Word lists and keyword patterns used by the PII detectors.

Everything here is data: keyword regular expressions (English and Spanish)
that make an otherwise ambiguous number count as personal data, the medical
lexicon, and the list of US state abbreviations used to recognise ZIP codes.
"""

from __future__ import annotations

import re

# --- keywords that make a bare number meaningful ---------------------------

SSN_KEYWORDS = re.compile(
    r"(?i:\b(?:ssn|ss\s*#|ss\s*no\.?|ss\s*number|soc\.?\s*sec\.?(?:\s*(?:no\.?|number|#))?"
    r"|social\s+security(?:\s+(?:number|no\.?|num|#|card))?|social\s*#"
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
    r"|fecha\s+de\s+nacimiento|nacimiento|nacid[oa]|nac[ií]|cumpleaños|f\.\s*nac\.?)(?![\w]))"
)

# Contexts in which a phone-shaped number is an identifier, not a phone.
REFERENCE_KEYWORDS = re.compile(
    r"(?i:\b(?:case|order|ticket|invoice|inv|confirmation|conf|tracking|reference|ref"
    r"|claim|receipt|permit|license|licence|policy|file|record|docket|po|transaction"
    r"|part|item|serial|model|sku|product|lot|batch|account|acct|expediente|caso|pedido|factura|orden|folio|n[uú]mero\s+de\s+caso)"
    r"(?:\s*(?:number|no\.?|num\.?|#|id))?(?![\w]))"
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

# --- medical lexicon ---------------------------------------------------------

# Terms that reveal health information (P6 "medical details").  Findings are
# severity "review": flagged for staff attention, redacted only in PUBLIC.
MEDICAL_TERMS: tuple[str, ...] = (
    # English
    "diagnosis",
    "diagnosed",
    "diagnoses",
    "HIV",
    "AIDS",
    "cancer",
    "tumor",
    "tumour",
    "leukemia",
    "lymphoma",
    "diabetes",
    "diabetic",
    "prescription",
    "prescriptions",
    "prescribed",
    "pregnant",
    "pregnancy",
    "miscarriage",
    "abortion",
    "chemotherapy",
    "chemo",
    "radiation therapy",
    "dialysis",
    "psychiatric",
    "psychiatrist",
    "mental illness",
    "mental health condition",
    "depression",
    "anxiety disorder",
    "bipolar",
    "schizophrenia",
    "PTSD",
    "dementia",
    "Alzheimer's",
    "Alzheimers",
    "Parkinson's",
    "epilepsy",
    "seizures",
    "seizure disorder",
    "multiple sclerosis",
    "autism",
    "hepatitis",
    "tuberculosis",
    "STD",
    "sexually transmitted",
    "heart attack",
    "stroke",
    "COPD",
    "asthma",
    "hypertension",
    "kidney failure",
    "substance abuse",
    "addiction",
    "rehab",
    "overdose",
    "suicidal",
    "opioid",
    "opioids",
    "methadone",
    "suboxone",
    "insulin",
    "antidepressant",
    "antidepressants",
    "antipsychotic",
    "antipsychotics",
    "benzodiazepines",
    "chronic pain",
    "medical condition",
    "medical records",
    "medication",
    "medications",
    "oncologist",
    "oncology",
    "surgery",
    "transplant",
    # Spanish
    "diagnóstico",
    "diagnosticado",
    "diagnosticada",
    "embarazada",
    "embarazo",
    "cáncer",
    "quimioterapia",
    "psiquiátrico",
    "psiquiátrica",
    "medicamento",
    "medicamentos",
    "receta médica",
    "VIH",
    "SIDA",
    "depresión",
    "enfermedad mental",
    "diálisis",
)

_CASE_SENSITIVE_TERMS = frozenset({"AIDS", "STD", "SIDA", "VIH", "HIV", "PTSD", "COPD"})


def _term_pattern(term: str) -> str:
    body = re.escape(term).replace(r"\ ", r"\s+").replace("'", "['’]")
    if term in _CASE_SENSITIVE_TERMS:
        return body
    return "(?i:" + body + ")"


MEDICAL = re.compile(
    r"(?<![\w])(?:"
    + "|".join(_term_pattern(t) for t in sorted(MEDICAL_TERMS, key=len, reverse=True))
    + r")(?![\w])"
)

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
    required needed missing wrong incorrect correct on in of for and or
    """.split()
)

# Words that cannot be part of a street name ("between 1998 and 2004 the road").
NOT_A_STREET_WORD = frozenset(
    """
    the a an and or of on in at to was is were are for from my our your his her their
    this that with by as people times hours days years dollars minutes miles
    """.split()
)
