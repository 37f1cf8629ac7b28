"""Builds tests/data/pii/labelled.yaml, the second labelled PII set (issue 27).

Run: python tests/data/pii/build_set.py  (deterministic: fixed seed).

The snippets are written from the shapes citizens use in contact-form mail to
state agencies (unemployment, DMV, tax refunds, benefits, housing, utilities,
public records requests), in English and Spanish, after public descriptions of
such complaints (state ombudsman and consumer-protection complaint categories).
Every value is fictional:

* SSNs are random numbers drawn from issued-looking ranges (not looked up);
  known-invalid ones (078-05-1120, 219-09-9999, area 000/666/9xx, group 00,
  serial 0000) appear only as negatives;
* cards are the issuers' published test numbers (Stripe / PayPal / Adyen
  documentation); routing numbers are published bank routing numbers (not
  personal data); IBANs are the ECBS/SWIFT documentation examples;
* phones use the reserved 555-0100..0199 block; e-mail domains are the
  reserved example.com / example.org / example.net;
* addresses, names and passwords are invented.

The set was written before the detector was tuned to it; a snippet is never
edited to suit the detector.  Each item: text, expect (kinds), lang, group
("pos" or the hard-negative family).
"""

from __future__ import annotations

import random
from pathlib import Path

import yaml

R = random.Random(27)
OUT = Path(__file__).with_name("labelled.yaml")


def ssn_digits() -> str:
    while True:
        area = R.randint(1, 899)
        if area == 666:
            continue
        group, serial = R.randint(1, 99), R.randint(1, 9999)
        d = f"{area:03d}{group:02d}{serial:04d}"
        if d not in {"078051120", "219099999", "457555462", "123456789"}:
            return d


def ssn() -> str:
    d = ssn_digits()
    sep = R.choice(["-", "-", "-", " ", "", "."])
    return f"{d[:3]}{sep}{d[3:5]}{sep}{d[5:]}" if sep != "" else d


def invalid_ssn() -> str:
    d = R.choice(
        [
            "078-05-1120",
            "219-09-9999",
            "000-{g:02d}-{s:04d}",
            "666-{g:02d}-{s:04d}",
            "9{a:02d}-{g:02d}-{s:04d}",
            "{A:03d}-00-{s:04d}",
            "{A:03d}-{g:02d}-0000",
        ]
    )
    return d.format(
        a=R.randint(0, 99), g=R.randint(1, 99), s=R.randint(1, 9999), A=R.randint(1, 665)
    )


CARDS = [
    "4111111111111111",
    "4012888888881881",
    "4242424242424242",
    "4000056655665556",
    "5555555555554444",
    "5105105105105100",
    "2223003122003222",
    "5200828282828210",
    "378282246310005",
    "371449635398431",
    "6011111111111117",
    "6011000990139424",
    "3530111333300000",
    "3566002020360505",
    "30569309025904",
    "38520000023237",
    "4222222222222",
]


def card() -> str:
    c = R.choice(CARDS)
    style = R.choice(["plain", "space", "dash"])
    if style == "plain":
        return c
    sep = " " if style == "space" else "-"
    if len(c) == 15:
        return sep.join([c[:4], c[4:10], c[10:]])
    if len(c) == 14:
        return sep.join([c[:4], c[4:10], c[10:]])
    return sep.join(c[i : i + 4] for i in range(0, len(c), 4))


ABAS = [
    "011000015",
    "021000021",
    "026009593",
    "011401533",
    "091000019",
    "121000358",
    "322271627",
    "111000025",
    "061000052",
    "071000013",
    "081000032",
    "044000037",
    "063100277",
    "122000661",
    "211370545",
    "021200339",
]


def aba_ok(d: str) -> bool:
    return sum(w * int(x) for w, x in zip((3, 7, 1) * 3, d, strict=True)) % 10 == 0


ABAS = [a for a in ABAS if aba_ok(a)]


def aba() -> str:
    return R.choice(ABAS)


def acct() -> str:
    n = R.randint(8, 12)
    return str(R.randint(1, 9)) + "".join(str(R.randint(0, 9)) for _ in range(n - 1))


IBANS = [
    "GB82 WEST 1234 5698 7654 32",
    "DE89 3704 0044 0532 0130 00",
    "ES91 2100 0418 4502 0005 1332",
    "FR14 2004 1010 0505 0001 3M02 606",
    "GB82WEST12345698765432",
    "ES9121000418450200051332",
]

FIRST = [
    "maria",
    "jose",
    "ana",
    "luis",
    "carmen",
    "james",
    "linda",
    "robert",
    "tanya",
    "deshawn",
    "mei",
    "olga",
    "pat",
    "rosa",
    "kevin",
    "aisha",
    "tom",
    "elena",
]
LAST = [
    "garcia",
    "smith",
    "nguyen",
    "rivera",
    "johnson",
    "okafor",
    "kowalski",
    "lopez",
    "brown",
    "martinez",
    "chen",
    "hernandez",
    "murphy",
    "diaz",
    "patel",
    "cruz",
]


def email() -> str:
    f, last = R.choice(FIRST), R.choice(LAST)
    local = R.choice(
        [f"{f}.{last}", f"{f}{last}{R.randint(1, 99)}", f"{f[0]}{last}", f"{last}_{f}"]
    )
    return f"{local}@" + R.choice(["example.com", "example.org", "example.net", "mail.example.com"])


AREAS = ["860", "203", "212", "787", "305", "617", "773", "213", "512", "404", "602", "959"]


def phone() -> str:
    a, x = R.choice(AREAS), f"555-01{R.randint(0, 99):02d}"
    line = x[4:]
    return R.choice(
        [
            f"({a}) 555-{line}",
            f"{a}-555-{line}",
            f"{a}.555.{line}",
            f"{a} 555 {line}",
            f"+1 {a} 555 {line}",
            f"1-{a}-555-{line}",
            f"{a}555{line}",
        ]
    )


EN_MON = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
ES_MON = [
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
]


def date_en(lo: int = 1940, hi: int = 2006) -> str:
    y, m, d = R.randint(lo, hi), R.randint(1, 12), R.randint(1, 28)
    return R.choice(
        [
            f"{m}/{d}/{y}",
            f"{m:02d}/{d:02d}/{y}",
            f"{EN_MON[m - 1]} {d}, {y}",
            f"{y}-{m:02d}-{d:02d}",
            f"{d} {EN_MON[m - 1][:3]} {y}",
        ]
    )


def date_es(lo: int = 1940, hi: int = 2006) -> str:
    y, m, d = R.randint(lo, hi), R.randint(1, 12), R.randint(1, 28)
    return R.choice([f"{d}/{m}/{y}", f"{d:02d}/{m:02d}/{y}", f"{d} de {ES_MON[m - 1]} de {y}"])


STREETS = [
    "Main",
    "Oak",
    "Maple",
    "Washington",
    "Park",
    "Elm",
    "Cedar",
    "Lincoln",
    "Martin Luther King Jr",
    "Franklin",
    "Prospect",
    "Hillside",
    "Wethersfield",
    "Farmington",
    "Albany",
    "Lake",
]
SUFFIX = [
    "St",
    "Street",
    "Ave",
    "Avenue",
    "Rd",
    "Road",
    "Blvd",
    "Dr",
    "Drive",
    "Ln",
    "Lane",
    "Ct",
    "Pl",
    "Way",
    "Terrace",
]
CITIES = [
    ("Hartford", "CT", "06105"),
    ("New Haven", "CT", "06511"),
    ("Austin", "TX", "78701"),
    ("Bridgeport", "CT", "06604"),
    ("Phoenix", "AZ", "85004"),
    ("Albany", "NY", "12207"),
    ("Springfield", "IL", "62701"),
    ("Miami", "FL", "33130"),
]
ES_STREETS = [
    "Luna",
    "Sol",
    "Loíza",
    "San Francisco",
    "de la Cruz",
    "Las Flores",
    "Betances",
    "Principal",
    "Colón",
    "Hidalgo",
]
PR_CITIES = [
    ("San Juan", "PR", "00901"),
    ("Ponce", "PR", "00730"),
    ("Caguas", "PR", "00725"),
    ("Bayamón", "PR", "00961"),
]


def unit() -> str:
    return R.choice(
        [
            f", Apt {R.randint(1, 40)}{R.choice('ABCD')}",
            f" Apt. {R.randint(1, 9)}",
            f", Unit {R.randint(1, 300)}",
            f" #{R.randint(1, 30)}",
            f", Suite {R.randint(100, 900)}",
            f", Fl {R.randint(2, 9)}",
            "",
        ]
    )


def city() -> str:
    c, s, z = R.choice(CITIES)
    return R.choice([f", {c}, {s} {z}", f", {c} {s} {z}", f", {c}, {s}", ""])


def address() -> str:
    n = R.randint(3, 9800)
    kind = R.random()
    if kind < 0.55:
        d = R.choice(["", "", "", "N ", "West ", "S. "])
        return f"{n} {d}{R.choice(STREETS)} {R.choice(SUFFIX)}{unit()}{city()}"
    if kind < 0.68:
        return (
            R.choice(["PO Box", "P.O. Box", "Post Office Box"]) + f" {R.randint(2, 9999)}" + city()
        )
    if kind < 0.80:
        return (
            R.choice(
                [
                    f"RR {R.randint(1, 9)} Box {R.randint(1, 400)}",
                    f"Rural Route {R.randint(1, 9)}, Box {R.randint(1, 400)}",
                    f"HC {R.randint(1, 9)} Box {R.randint(1, 400)}",
                ]
            )
            + city()
        )
    a, b = R.sample(STREETS, 2)
    return R.choice(
        [
            f"the corner of {a} and {b}",
            f"corner of {a} {R.choice(SUFFIX)} and {b} {R.choice(SUFFIX)}",
            f"the corner of {a} & {b} Street",
        ]
    )


def address_es() -> str:
    n = R.randint(3, 2000)
    c, s, z = R.choice(PR_CITIES)
    cz = R.choice([f", {c}, {s} {z}", f", {c} {z}", ""])
    k = R.random()
    if k < 0.35:
        return (
            f"Calle {R.choice(ES_STREETS)} {n}"
            + R.choice(
                ["", f", Apto {R.randint(1, 20)}{R.choice('ABC')}", f" apto. {R.randint(1, 9)}"]
            )
            + cz
        )
    if k < 0.55:
        return f"Calle {R.choice(ES_STREETS)} núm. {n}" + cz
    if k < 0.72:
        return (
            f"Avenida {R.choice(ES_STREETS)} {n}"
            + R.choice(["", f", apto {R.randint(1, 30)}"])
            + cz
        )
    if k < 0.84:
        return f"{n} Calle {R.choice(ES_STREETS)}" + cz
    if k < 0.92:
        return f"Apartado {R.randint(2, 9999)}" + cz
    a, b = R.sample(ES_STREETS, 2)
    return f"la esquina de la calle {a} y la calle {b}"


def pw() -> str:
    return R.choice(
        [
            "Tulip2024!",
            "bluecar77",
            "Sunny#1990",
            "casa.roja55",
            "Rocky2019",
            "p4ssW0rd!x",
            "Mariposa#8",
            "qwerty123$",
            "Gatito.2023",
            "Lakers24!",
            "Dragon_77",
            "hunter2go",
            "Verano2025*",
            "mango-tango9",
        ]
    )


def pin() -> str:
    return "".join(str(R.randint(0, 9)) for _ in range(R.choice([4, 4, 6])))


def surname() -> str:
    return R.choice(LAST).title()


MED_EN = [
    "diabetes",
    "HIV",
    "breast cancer",
    "epilepsy",
    "bipolar disorder",
    "schizophrenia",
    "PTSD",
    "multiple sclerosis",
    "kidney failure",
    "hepatitis C",
    "lupus",
    "Crohn's disease",
    "COPD",
    "seizure disorder",
    "major depression",
    "dementia",
    "Parkinson's",
    "sickle cell anemia",
    "cerebral palsy",
    "opioid addiction",
]
MEDS_EN = [
    "insulin",
    "metformin",
    "methadone",
    "Suboxone",
    "lithium",
    "Adderall",
    "oxycodone",
    "Xanax",
    "sertraline",
    "chemotherapy",
    "antiretrovirals",
    "prednisone",
]
MED_ES = [
    "diabetes",
    "VIH",
    "cáncer de mama",
    "epilepsia",
    "trastorno bipolar",
    "esquizofrenia",
    "insuficiencia renal",
    "hepatitis C",
    "lupus",
    "depresión mayor",
    "demencia",
    "asma crónica",
    "Alzheimer",
    "una adicción a los opioides",
]
MEDS_ES = ["insulina", "metformina", "metadona", "quimioterapia", "litio", "antirretrovirales"]

# --- positives: (template, kinds, lang) ------------------------------------------
POS = [
    # SSN, English
    ("My SSN is {ssn} and I still have not received my unemployment payment.", ["ssn"], "en"),
    ("Social security number: {ssn}. Please update my file.", ["ssn"], "en"),
    ("I typed {ssn} as my social security number and the portal rejected it.", ["ssn"], "en"),
    ("ssn {ssn} - applying for the energy assistance program", ["ssn"], "en"),
    ("Please verify {ssn}, that is my social security number.", ["ssn"], "en"),
    ("SS# {ssn}\nName on card does not match DMV records.", ["ssn"], "en"),
    ("My husband's social is {ssn} and mine is on the form already.", ["ssn"], "en"),
    ("The tax refund letter shows the last four but my full SSN {ssn} is correct.", ["ssn"], "en"),
    ("Hi, for the Medicaid renewal, soc sec no. {ssn}, thanks", ["ssn"], "en"),
    ("Re: overpayment notice\nSSN: {ssn}\nI never worked for that employer.", ["ssn"], "en"),
    (
        "Someone filed a return under my social security number {ssn}. Identity theft!",
        ["ssn"],
        "en",
    ),
    ("{ssn} is my SSN, the caseworker asked me to email it.", ["ssn"], "en"),
    ("Applicant SSN {ssn}; date of application last Monday.", ["ssn"], "en"),
    ("I was told to include my social security # ({ssn}) for the name change.", ["ssn"], "en"),
    ("My claim number is 2026-11873 and my SSN is {ssn}.", ["ssn"], "en"),
    ("The employer reported wages under SSN {ssn} that are not mine.", ["ssn"], "en"),
    ("My daughter's social security number is {ssn}, she is a dependent.", ["ssn"], "en"),
    # SSN, Spanish
    ("Mi número de seguro social es {ssn}. Necesito ayuda con mi solicitud.", ["ssn"], "es"),
    ("Seguro social: {ssn}. No he recibido mi pago de desempleo.", ["ssn"], "es"),
    ("Le escribo porque alguien usó mi seguro social {ssn} para pedir beneficios.", ["ssn"], "es"),
    ("SSN {ssn} — la oficina me pidió enviarlo por aquí.", ["ssn"], "es"),
    ("El número {ssn} es mi seguro social, por favor corríjanlo.", ["ssn"], "es"),
    ("Mi esposo tiene el seguro social {ssn} y no aparece en el sistema.", ["ssn"], "es"),
    ("Número de Seguro Social: {ssn}\nFecha de la solicitud: ayer", ["ssn"], "es"),
    # cards
    ("I paid the registration fee with card {card} but got no receipt.", ["card"], "en"),
    ("Charge it to my Visa {card} please.", ["card"], "en"),
    ("My credit card {card} was billed twice for the park pass.", ["card"], "en"),
    ("Refund to {card}, the fishing license payment failed.", ["card"], "en"),
    ("card no. {card} charged $45.00 and the kiosk froze", ["card"], "en"),
    ("The DMV site kept my debit card number {card} on file, please delete it.", ["card"], "en"),
    ("Payment: {card} exp 04/28 cvv on back, for the camping permit fee.", ["card"], "en"),
    ("I used my Mastercard ending... actually the full number is {card}.", ["card"], "en"),
    ("Pagué con la tarjeta {card} y no recibí confirmación.", ["card"], "es"),
    ("Mi tarjeta de crédito {card} fue cobrada dos veces.", ["card"], "es"),
    ("Número de tarjeta: {card}. Quiero un reembolso por la multa.", ["card"], "es"),
    ("Usé la tarjeta de débito {card} en el quiosco del DMV.", ["card"], "es"),
    # ABA + account
    (
        "For direct deposit: routing number {aba}, account number {acct}.",
        ["aba", "bank_account"],
        "en",
    ),
    ("ABA {aba} acct {acct} checking", ["aba", "bank_account"], "en"),
    (
        "Please send the refund to my checking account {acct}, routing {aba}.",
        ["aba", "bank_account"],
        "en",
    ),
    ("Bank routing #: {aba}\nAccount #: {acct}", ["aba", "bank_account"], "en"),
    ("Routing/transit number {aba} is my credit union.", ["aba"], "en"),
    (
        "The bank says the routing number {aba} is right, why was the deposit rejected?",
        ["aba"],
        "en",
    ),
    (
        "Número de ruta {aba}, número de cuenta {acct}, para el depósito directo.",
        ["aba", "bank_account"],
        "es",
    ),
    ("Ruta bancaria: {aba}. Cuenta de cheques: {acct}.", ["aba", "bank_account"], "es"),
    ("Mi número de ruta es {aba}.", ["aba"], "es"),
    ("My savings account number is {acct} at the credit union.", ["bank_account"], "en"),
    ("Deposit it in bank account {acct} please.", ["bank_account"], "en"),
    ("Acct no. {acct} — that is where my benefits should go.", ["bank_account"], "en"),
    (
        "My checking account {acct} was overdrawn because you withdrew the fee twice.",
        ["bank_account"],
        "en",
    ),
    ("Número de cuenta: {acct}, para el reembolso.", ["bank_account"], "es"),
    ("Mi cuenta bancaria es {acct} en el Banco Popular.", ["bank_account"], "es"),
    ("Cuenta de ahorros {acct}, por favor depositen allí.", ["bank_account"], "es"),
    ("My IBAN is {iban}, I live abroad now and need the refund.", ["bank_account"], "en"),
    ("IBAN: {iban} (Spanish bank account)", ["bank_account"], "en"),
    ("Mi IBAN es {iban}.", ["bank_account"], "es"),
    # e-mail
    ("Please write to me at {email}, not my old address.", ["email"], "en"),
    ("You can reach me at {email} about the records request.", ["email"], "en"),
    ("My new email is {email}", ["email"], "en"),
    ("Contact: {email}", ["email"], "en"),
    ("Escríbanme a {email}, por favor.", ["email"], "es"),
    ("Mi correo electrónico es {email}.", ["email"], "es"),
    # phones
    ("Call me at {phone} after 5pm.", ["phone"], "en"),
    ("My cell is {phone}, please text before calling.", ["phone"], "en"),
    ("You can reach me on {phone} regarding the pothole.", ["phone"], "en"),
    ("Phone: {phone}", ["phone"], "en"),
    ("The landlord's number is {phone} if you need to call him.", ["phone"], "en"),
    ("Nobody answered at {phone} for three days.", ["phone"], "en"),
    ("Please have the inspector call {phone}.", ["phone"], "en"),
    ("Llámenme al {phone} por la tarde.", ["phone"], "es"),
    ("Mi teléfono es {phone}.", ["phone"], "es"),
    ("Pueden comunicarse conmigo al {phone} o por correo.", ["phone"], "es"),
    ("Celular: {phone}", ["phone"], "es"),
    # birth dates
    ("My date of birth is {date_en} and the license shows the wrong year.", ["birth_date"], "en"),
    ("DOB: {date_en}", ["birth_date"], "en"),
    ("I was born on {date_en} in Hartford.", ["birth_date"], "en"),
    ("Birthday {date_en}, please fix it on my ID card.", ["birth_date"], "en"),
    ("My son (born {date_en}) needs a copy of his birth certificate.", ["birth_date"], "en"),
    ("D.O.B. {date_en} — the voter record says otherwise.", ["birth_date"], "en"),
    ("Fecha de nacimiento: {date_es}", ["birth_date"], "es"),
    ("Nací el {date_es} en Ponce.", ["birth_date"], "es"),
    ("Mi hija nació el {date_es} y necesito su acta.", ["birth_date"], "es"),
    ("Mi fecha de nacimiento es {date_es} pero la licencia dice otra.", ["birth_date"], "es"),
    # addresses
    ("I live at {addr} and the streetlight has been out for weeks.", ["street_address"], "en"),
    ("Please mail the form to {addr}.", ["street_address"], "en"),
    ("There is a pothole in front of {addr}.", ["street_address"], "en"),
    ("My new address is {addr}", ["street_address"], "en"),
    ("Mailing address: {addr}", ["street_address"], "en"),
    ("The abandoned car is at {addr}, it has been there a month.", ["street_address"], "en"),
    ("Send the check to {addr} please, I moved.", ["street_address"], "en"),
    ("Vivo en {addr_es} y no pasa el camión de basura.", ["street_address"], "es"),
    ("Mi dirección es {addr_es}.", ["street_address"], "es"),
    ("Envíen la carta a {addr_es}, por favor.", ["street_address"], "es"),
    ("Dirección postal: {addr_es}", ["street_address"], "es"),
    ("Hay un hoyo enorme frente a {addr_es}.", ["street_address"], "es"),
    # passwords
    ("My password is {pw} and it still says invalid login.", ["password"], "en"),
    ("password: {pw}", ["password"], "en"),
    ("I reset it, the new passcode is {pw}", ["password"], "en"),
    ("pw: {pw} (please fix the portal)", ["password"], "en"),
    ("login {user} / {pw} does not work on the unemployment site", ["password"], "en"),
    ("Username: {user}, password {pw}", ["password"], "en"),
    ("my PIN is {pin} and the phone system keeps rejecting it", ["password"], "en"),
    ("PIN: {pin}", ["password"], "en"),
    ("The PIN for my EBT card is {pin}, can you check it?", ["password"], "en"),
    ("user {user} pass {pw}", ["password"], "en"),
    ("Mi contraseña es {pw} y no me deja entrar.", ["password"], "es"),
    ("Contraseña: {pw}", ["password"], "es"),
    ("Mi clave es {pw}, ¿por qué no funciona?", ["password"], "es"),
    ("Mi PIN es {pin}.", ["password"], "es"),
    ("usuario {user} / contraseña {pw}", ["password"], "es"),
    ("El NIP de mi tarjeta EBT es {pin}.", ["password"], "es"),
    # maiden names
    ("My mother's maiden name is {surname}, for the security question.", ["maiden_name"], "en"),
    ("Mother's maiden name: {surname}", ["maiden_name"], "en"),
    ("Security answer (mom's maiden name) is {surname}.", ["maiden_name"], "en"),
    ("They asked my mothers maiden name, it is {surname}.", ["maiden_name"], "en"),
    ("Her maiden name was {surname} before she married.", ["maiden_name"], "en"),
    ("El apellido de soltera de mi madre es {surname}.", ["maiden_name"], "es"),
    ("Apellido de soltera de mi mamá: {surname}", ["maiden_name"], "es"),
    ("El apellido de mi madre es {surname}, para la pregunta de seguridad.", ["maiden_name"], "es"),
    ("El apellido materno es {surname}.", ["maiden_name"], "es"),
    # medical
    ("I have {med} and cannot stand in line at the DMV.", ["medical"], "en"),
    ("My son was diagnosed with {med} last year.", ["medical"], "en"),
    ("I take {meds} every day and the pharmacy benefit was cut.", ["medical"], "en"),
    ("I am on dialysis three times a week and need a parking permit.", ["medical"], "en"),
    ("My HIV status should not be on the public record.", ["medical"], "en"),
    ("I'm on {meds}; the Medicaid letter says it is not covered.", ["medical"], "en"),
    ("My wife has {med}, we need the accessible bus route back.", ["medical"], "en"),
    ("Because of my {med} I missed the hearing.", ["medical"], "en"),
    ("I'm HIV positive and afraid my employer will find out.", ["medical"], "en"),
    ("I was prescribed {meds} after the accident.", ["medical"], "en"),
    ("I am pregnant and the clinic wait list is four months.", ["medical"], "en"),
    ("Tengo {med_es} y no puedo hacer la fila.", ["medical"], "es"),
    ("A mi hijo le diagnosticaron {med_es}.", ["medical"], "es"),
    ("Tomo {meds_es} todos los días.", ["medical"], "es"),
    ("Estoy en diálisis tres veces por semana.", ["medical"], "es"),
    ("Mi esposa padece de {med_es} y necesitamos ayuda.", ["medical"], "es"),
    ("Estoy embarazada y me negaron la cita.", ["medical"], "es"),
    ("Soy VIH positivo y no quiero que se publique.", ["medical"], "es"),
    # mixed
    ("SSN {ssn}, DOB {date_en}, phone {phone}.", ["ssn", "birth_date", "phone"], "en"),
    (
        "Name: {user}\nEmail: {email}\nPhone: {phone}\nAddress: {addr}",
        ["email", "phone", "street_address"],
        "en",
    ),
    ("Card {card} was charged; call me at {phone}.", ["card", "phone"], "en"),
    ("Seguro social {ssn}, teléfono {phone}.", ["ssn", "phone"], "es"),
    ("Correo: {email}. Dirección: {addr_es}.", ["email", "street_address"], "es"),
    ("Case 2026-4411: my SSN is {ssn} and my password is {pw}.", ["ssn", "password"], "en"),
    ("I have {med}; my date of birth is {date_en}.", ["medical", "birth_date"], "en"),
]

# --- hard negatives: (template, family, lang) ---------------------------------------
NEG = [
    # SSN-shaped reference numbers (nine digits, delimited or not) near rejecting words
    ("My case number is {ssn} and nobody has called me back.", "reference", "en"),
    ("Claim # {ssn} was denied without explanation.", "reference", "en"),
    ("Docket No. {ssn}, hearing next month.", "reference", "en"),
    ("Ticket {ssn} is still open in your portal.", "reference", "en"),
    ("Order {ssn} never arrived.", "reference", "en"),
    ("Invoice {ssn} was paid in full on time.", "reference", "en"),
    ("Permit number {ssn} expired before the inspection.", "reference", "en"),
    ("Tracking number {ssn} shows delivered but I have nothing.", "reference", "en"),
    ("Reference: {ssn}", "reference", "en"),
    ("Account no. {ssn} on my water bill is wrong.", "reference", "en"),
    ("Please look up confirmation {ssn}.", "reference", "en"),
    ("The citation number on the ticket is {ssn}.", "reference", "en"),
    ("Your letter quotes case {ssn}, which is not mine.", "reference", "en"),
    ("Re: claim {ssn} — still waiting", "reference", "en"),
    ("Número de expediente {ssn}, no he recibido respuesta.", "reference", "es"),
    ("Caso {ssn}: la audiencia fue cancelada.", "reference", "es"),
    ("Pedido {ssn} nunca llegó.", "reference", "es"),
    ("Factura {ssn} ya está pagada.", "reference", "es"),
    ("Permiso núm. {ssn} venció.", "reference", "es"),
    ("Número de referencia: {ssn}", "reference", "es"),
    ("Número de cuenta de cliente {ssn} en la factura de luz.", "reference", "es"),
    ("Mi número de reclamación es {ssn}.", "reference", "es"),
    ("Número de seguimiento {ssn}, el paquete no llegó.", "reference", "es"),
    # known-invalid SSNs
    (
        "The sample card in the brochure shows {bad_ssn}; is that a real number?",
        "invalid_ssn",
        "en",
    ),
    ("Your form example uses {bad_ssn} as the SSN placeholder.", "invalid_ssn", "en"),
    ("El formulario de ejemplo dice seguro social {bad_ssn}.", "invalid_ssn", "es"),
    ("Test data: SSN {bad_ssn}", "invalid_ssn", "en"),
    # phone-shaped but not phones
    ("See https://portal.example.gov/claims/{digits10}/status for the details.", "url", "en"),
    ("The link www.example.org/forms?id={digits10} is broken.", "url", "en"),
    ("Descargué el formulario de https://example.gov/doc/{digits10}.pdf", "url", "es"),
    ("Order #{digits10} still has not shipped.", "order", "en"),
    ("Confirmation number: {digits10}", "reference", "en"),
    ("Tracking: 1Z999AA1{digits10}", "tracking", "en"),
    ("USPS tracking 9400 1118 9922 {d4} {d4} {d2}", "tracking", "en"),
    ("FedEx tracking {digits12} shows a delay.", "tracking", "en"),
    ("Número de pedido {digits10}.", "order", "es"),
    ("Seguimiento: 9405 5036 9930 {d4} {d4} {d2}", "tracking", "es"),
    ("The meeting was moved from {date_recent} 10:30 to the next week.", "date", "en"),
    ("Inspection window {date_recent} 2:00-4:00 pm", "date", "en"),
    ("La cita es el {date_recent_es} a las 9:15.", "date", "es"),
    # dates that are not birth dates
    ("I submitted the application on {date_recent}.", "date", "en"),
    ("The hearing was postponed to {date_recent}.", "date", "en"),
    ("My lease started {date_recent} and the deposit was never returned.", "date", "en"),
    ("Envié la solicitud el {date_recent_es}.", "date", "es"),
    ("La audiencia es el {date_recent_es}.", "date", "es"),
    # prices and amounts
    ("I was charged ${price} instead of ${price2}.", "price", "en"),
    ("The fee went up to ${price} this year, why?", "price", "en"),
    ("Me cobraron ${price} por la licencia.", "price", "es"),
    ("Total due: ${price} (includes late fee of ${price2})", "price", "en"),
    # ZIP+4 and places without a street address
    ("Our ZIP is {zip4} but the mail goes to the wrong post office.", "zip", "en"),
    ("Service area {zip4} has had no water since Tuesday.", "zip", "en"),
    ("Código postal {zip4}, zona sin servicio.", "zip", "es"),
    ("I live in Hartford and the buses are always late.", "place", "en"),
    ("The office on the second floor was closed at 2 pm.", "place", "en"),
    ("Vivo en Caguas y la oficina estaba cerrada.", "place", "es"),
    ("There were 300 people in line at 9 am.", "place", "en"),
    ("Route 9 has been closed for 2 weeks.", "place", "en"),
    ("I drove 45 miles to the office in Phoenix.", "place", "en"),
    # docket / court / statute numbers
    ("Docket {docket}, judge assigned in March.", "docket", "en"),
    ("Under section {statute} of the statutes the agency must answer in 30 days.", "docket", "en"),
    ("Expediente judicial {docket}.", "docket", "es"),
    ("Public Act {pa} changed the deadline.", "docket", "en"),
    # card-shaped but not cards
    ("Tracking number {digits16} never updated.", "tracking", "en"),
    ("Serial number {digits16} on the meter.", "reference", "en"),
    ("Número de serie {digits16} del medidor.", "reference", "es"),
    ("Policy {digits13} lapsed after the payment error.", "reference", "en"),
    # account-ish numbers that are not bank accounts
    ("My customer account number is {acct} on the electric bill.", "account", "en"),
    ("Utility account {acct} was closed by mistake.", "account", "en"),
    ("Library account {acct} shows fines I paid.", "account", "en"),
    ("Cuenta de cliente {acct} en la factura del agua.", "account", "es"),
    ("Online account ID {acct} locked after the update.", "account", "en"),
    # password / secret words without a secret
    ("My password is not working since the update.", "secret_words", "en"),
    ("I forgot my password and the reset link expired.", "secret_words", "en"),
    ("The PIN was mailed to the wrong address.", "secret_words", "en"),
    ("Mi contraseña no funciona desde ayer.", "secret_words", "es"),
    ("Olvidé mi clave y el enlace no llega.", "secret_words", "es"),
    ("The passcode field is too short on your site.", "secret_words", "en"),
    ("How do I change my PIN for the EBT card?", "secret_words", "en"),
    ("The login page / help page both show an error.", "secret_words", "en"),
    # maiden-name words without a name
    ("The form asks for my mother's maiden name, why is that needed?", "maiden_words", "en"),
    ("I don't know my mother's maiden name, is it required?", "maiden_words", "en"),
    ("¿Por qué piden el apellido de soltera de mi madre?", "maiden_words", "es"),
    # health words without personal medical details
    ("The health department office hours changed.", "health_words", "en"),
    ("Is the hospital parking lot open on weekends?", "health_words", "en"),
    ("El departamento de salud no contesta el teléfono.", "health_words", "es"),
    ("The clinic on Main Street needs a ramp.", "health_words", "en"),
    # plain complaints
    ("The trash was not collected on our street this week.", "plain", "en"),
    ("The park restrooms have been locked since May.", "plain", "en"),
    ("Please send me the minutes of the last board meeting.", "plain", "en"),
    ("No recogieron la basura esta semana.", "plain", "es"),
    ("Quiero una copia del acta de la reunión.", "plain", "es"),
    ("The website times out when I upload a PDF larger than 10 MB.", "plain", "en"),
    ("I waited 3 hours and 20 minutes at the DMV on Friday.", "plain", "en"),
    ("Esperé 3 horas en la oficina del DMV el viernes.", "plain", "es"),
    ("Room 204 was locked and the sign said to go to 310.", "plain", "en"),
    ("Record EX-2026-{d6} still shows pending.", "reference", "en"),
    ("Regarding record EX-2026-{d6}, I never got an answer.", "reference", "en"),
]


def digits(n: int) -> str:
    return str(R.randint(1, 9)) + "".join(str(R.randint(0, 9)) for _ in range(n - 1))


def fill(template: str) -> str:
    values = {
        "ssn": ssn,
        "bad_ssn": invalid_ssn,
        "card": card,
        "aba": aba,
        "acct": acct,
        "iban": lambda: R.choice(IBANS),
        "email": email,
        "phone": phone,
        "date_en": date_en,
        "date_es": date_es,
        "addr": address,
        "addr_es": address_es,
        "pw": pw,
        "pin": pin,
        "surname": surname,
        "user": lambda: (
            R.choice(FIRST) + R.choice(["", "_", "."]) + R.choice(LAST)[:4] + str(R.randint(1, 99))
        ),
        "med": lambda: R.choice(MED_EN),
        "meds": lambda: R.choice(MEDS_EN),
        "med_es": lambda: R.choice(MED_ES),
        "meds_es": lambda: R.choice(MEDS_ES),
        "digits10": lambda: digits(10),
        "digits12": lambda: digits(12),
        "digits13": lambda: digits(13),
        "digits16": lambda: digits(16),
        "d4": lambda: digits(4),
        "d2": lambda: digits(2),
        "d6": lambda: digits(6),
        "date_recent": lambda: date_en(2024, 2026),
        "date_recent_es": lambda: date_es(2024, 2026),
        "price": lambda: f"{R.randint(1, 9999):,}.{R.randint(0, 99):02d}",
        "price2": lambda: f"{R.randint(1, 999)}.{R.randint(0, 99):02d}",
        "zip4": lambda: (
            f"{R.choice(['06105', '06511', '78701', '00901', '85004'])}-{R.randint(1000, 9999)}"
        ),
        "docket": lambda: R.choice(
            [
                f"HHD-CV-{R.randint(20, 26)}-{digits(7)}-S",
                f"{R.randint(1, 9)}:{R.randint(20, 26)}-cv-{digits(5)}",
                f"FST-FA{R.randint(20, 26)}-{digits(7)}",
            ]
        ),
        "statute": lambda: f"{R.randint(1, 54)}-{R.randint(100, 999)}",
        "pa": lambda: f"{R.randint(19, 26)}-{R.randint(1, 250)}",
    }
    out = template
    while "{" in out:
        start = out.index("{")
        end = out.index("}", start)
        name = out[start + 1 : end]
        out = out[:start] + values[name]() + out[end + 1 :]
    return out


def build() -> list[dict[str, object]]:
    items: list[dict[str, object]] = []
    seen: set[str] = set()
    # Each template gives several snippets with different values and shapes.
    for reps, templates, positive in ((3, POS, True), (3, NEG, False)):
        for template, label, lang in templates:
            for _ in range(reps):
                text = fill(template)
                if text in seen:
                    continue
                seen.add(text)
                if positive:
                    items.append(
                        {"text": text, "expect": list(label), "lang": lang, "group": "pos"}
                    )
                else:
                    items.append({"text": text, "expect": [], "lang": lang, "group": label})
    return items


def main() -> None:
    items = build()
    header = (__doc__ or "").strip().splitlines()
    lines = ["# " + line if line else "#" for line in header]
    body = yaml.safe_dump({"items": items}, allow_unicode=True, sort_keys=False, width=1000)
    OUT.write_text("\n".join(lines) + "\n" + body, encoding="utf-8")
    pos = sum(1 for i in items if i["expect"])
    es = sum(1 for i in items if i["lang"] == "es")
    print(f"{len(items)} items: {pos} positive, {len(items) - pos} negative, {es} Spanish")


if __name__ == "__main__":
    main()
