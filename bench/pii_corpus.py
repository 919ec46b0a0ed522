"""Generate the two labelled PII corpora from Faker, seeded: a tuning set and a held-out set.

Both are built the way an outsider would build one: personal data from Faker (pinned as a dev
dependency) in nine locales, put into lines of the kinds a gateway sees — tickets, chats, log lines, CSV
rows, JSON, env files, mail headers — with each entity's span recorded as it is inserted, plus hard
negatives (order numbers, versions, dates, hashes, checksums that fail). Keys and tokens, which Faker
does not make, are drawn from each vendor's published format.

The two sets share nothing but this code's value generators: each has its own seed and its own
templates (TUNE_* and HELDOUT_* below), so the held-out lines use sentence frames, JSON keys, CSV
layouts and log formats the detectors were never tuned on. docs/pii.md says how they were kept apart.

Run: ``.venv/bin/python bench/pii_corpus.py [--out DIR]`` (rewrites tests/fixtures/pii/faker_tune.jsonl and
faker_heldout.jsonl; the output is the same on every run for a given Faker version).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import ipaddress
import json
import os
import random
import re
import string
import sys
from collections.abc import Callable
from pathlib import Path

from faker import Faker

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "pii"
LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pt_BR", "ja_JP")
LANGUAGE = {loc: loc.split("_")[0] for loc in LOCALES}
ALNUM = string.ascii_letters + string.digits

# ---------------------------------------------------------------- values
Values = Callable[[Faker, random.Random], str]


def _token(rng: random.Random, n: int, alphabet: str = ALNUM) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


SECRET_FORMATS = ("openai", "openai_legacy", "anthropic", "aws", "github", "github_pat", "google", "hf")
SECRET_FORMATS += ("slack", "stripe", "jwt")


def secret(fake: Faker, rng: random.Random) -> str:
    """A key in one of the public formats (OpenAI, Anthropic, AWS, GitHub, Google, Hugging Face, Slack,
    Stripe, JWT)."""
    kind = rng.choice(SECRET_FORMATS)
    if kind == "openai":
        return "sk-proj-" + _token(rng, rng.randint(48, 120), ALNUM + "_-")
    if kind == "openai_legacy":
        return "sk-" + _token(rng, 20) + "T3BlbkFJ" + _token(rng, 20)
    if kind == "anthropic":
        return "sk-ant-api03-" + _token(rng, 93, ALNUM + "_-") + "AA"
    if kind == "aws":
        return "AKIA" + _token(rng, 16, string.ascii_uppercase + "234567")
    if kind == "github":
        return "ghp_" + _token(rng, 36)
    if kind == "github_pat":
        return "github_pat_" + _token(rng, 22) + "_" + _token(rng, 59)
    if kind == "google":
        return "AIza" + _token(rng, 35, ALNUM + "_-")
    if kind == "hf":
        return "hf_" + _token(rng, 34, string.ascii_letters)  # letters only, as many real ones are
    if kind == "slack":
        return f"xoxb-{rng.randint(10**10, 10**12)}-{rng.randint(10**10, 10**12)}-{_token(rng, 24)}"
    if kind == "stripe":
        return rng.choice(["sk_live_", "rk_live_", "sk_test_"]) + _token(rng, rng.randint(24, 99))
    header = _b64url(b'{"alg":"HS256","typ":"JWT"}')
    payload = _b64url(json.dumps({"sub": fake.user_name(), "iat": rng.randint(1.6e9, 1.8e9)}).encode())
    return f"{header}.{payload}.{_token(rng, 43, ALNUM + '_-')}"


def card(fake: Faker, rng: random.Random) -> str:
    number = fake.credit_card_number()
    style = rng.random()
    if style < 0.5 or len(number) not in (15, 16):
        return number
    sep = rng.choice([" ", "-"])
    groups = [4, 6, 5] if len(number) == 15 else [4, 4, 4, 4]
    parts, at = [], 0
    for g in groups:
        parts.append(number[at : at + g])
        at += g
    return sep.join(parts)


def iban(fake: Faker, rng: random.Random) -> str:
    compact = fake.iban()
    if rng.random() < 0.5:
        return compact
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def ip(fake: Faker, rng: random.Random) -> str:
    choice = rng.random()
    if choice < 0.45:
        return str(fake.ipv4_public())
    if choice < 0.75:
        return str(fake.ipv4_private())
    full = str(fake.ipv6())
    return full if rng.random() < 0.5 else ipaddress.IPv6Address(full).compressed


def ssn(fake: Faker, rng: random.Random) -> str:
    """A US SSN (Faker's en_US rules) whatever the line's locale: US persons live everywhere."""
    _US.seed_instance(rng.randint(0, 2**31))
    value = str(_US.ssn())
    return value if rng.random() < 0.7 else value.replace("-", "")


_US = Faker("en_US")

VALUES: dict[str, Values] = {
    "EMAIL": lambda f, r: str(r.choice([f.email, f.free_email, f.company_email])()),
    "PHONE": lambda f, r: str(f.phone_number()),
    "CARD": card,
    "IBAN": iban,
    "SSN": ssn,
    "IP": ip,
    "SECRET": secret,
}


# ---------------------------------------------------------------- fillers (not personal data, not labelled)
def _version(rng: random.Random) -> str:
    return ".".join(str(rng.randint(0, 40)) for _ in range(4))


def _luhn_broken(fake: Faker, rng: random.Random) -> str:
    number = fake.credit_card_number()
    return number[:-1] + str((int(number[-1]) + rng.randint(1, 9)) % 10)


def _iban_broken(fake: Faker, rng: random.Random) -> str:
    value = fake.iban()
    return value[:2] + f"{(int(value[2:4]) + rng.randint(1, 50)) % 100:02d}" + value[4:]


_FIRST_DAY, _LAST_DAY = datetime.date(2015, 1, 1), datetime.date(2026, 6, 30)
FILLERS: dict[str, Values] = {
    "name": lambda f, r: str(f.name()),
    "city": lambda f, r: str(f.city()),
    "company": lambda f, r: str(f.company()),
    # Fixed bounds: Faker's defaults end at "now", which would change the files on every run.
    "date": lambda f, r: str(f.date_between_dates(_FIRST_DAY, _LAST_DAY)),
    "date_local": lambda f, r: f.date_between_dates(_FIRST_DAY, _LAST_DAY).strftime(
        r.choice(["%d.%m.%Y", "%d/%m/%Y", "%Y年%m月%d日"])
    ),
    "time": lambda f, r: f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}",
    "amount": lambda f, r: f"{r.randint(1, 9999)},{r.randint(0, 99):02d}",
    "order": lambda f, r: (
        f"{r.randint(100, 999)}-{r.randint(10**6, 10**7 - 1)}-{r.randint(10**6, 10**7 - 1)}"
    ),
    "invoice": lambda f, r: f"{r.randint(2019, 2026)}-{r.randint(1, 12):02d}-{r.randint(1, 99999):05d}",
    "ticket": lambda f, r: str(r.randint(100000, 99999999)),
    "version": lambda f, r: _version(r),
    "ean": lambda f, r: str(f.ean13()),
    "isbn": lambda f, r: str(f.isbn13()),
    "uuid": lambda f, r: str(f.uuid4()),
    "sha": lambda f, r: str(f.sha1()),
    "postcode": lambda f, r: str(f.postcode()),
    "luhn_broken": _luhn_broken,
    "iban_broken": _iban_broken,
    "bad_ssn": lambda f, r: (
        r.choice(["000", "666", f"9{r.randint(0, 99):02d}"])
        + f"-{r.randint(1, 99):02d}-{r.randint(1, 9999):04d}"
    ),
    "port": lambda f, r: str(r.randint(1024, 65535)),
    "count": lambda f, r: str(r.randint(2, 500)),
    "user": lambda f, r: str(f.user_name()),
    "ms": lambda f, r: str(r.randint(1_600_000_000_000, 1_800_000_000_000)),
    "semver": lambda f, r: f"{r.randint(0, 9)}.{r.randint(0, 30)}.{r.randint(0, 99)}",
}

# ---------------------------------------------------------------- templates
# {KIND} is labelled personal data; {lowercase} is a filler. Per language, sentence frames; then frames
# that read the same in every locale (logs, CSV, JSON, env files, mail headers).
TUNE_SENTENCES: dict[str, list[str]] = {
    "en": [
        "Hi, this is {name}. Please call me back on {PHONE} about my refund.",
        "You can reach me at {EMAIL} or on my mobile {PHONE}.",
        "I paid with my card {CARD} but the charge appeared twice.",
        "Please wire the deposit to IBAN {IBAN} by {date}.",
        "For the background check my SSN is {SSN}.",
        "The VPN drops every few minutes; my laptop is on {IP}.",
        "Oops, I pasted our key {SECRET} in the last message, please ignore it.",
        "Order {order} has not arrived yet, ticket {ticket}.",
        "Updated the GPU driver {version} and now the fan is louder.",
    ],
    "de": [
        "Guten Tag, bitte rufen Sie mich unter {PHONE} zurück.",
        "Meine E-Mail-Adresse lautet {EMAIL}, Telefon {PHONE}.",
        "Ich habe mit der Karte {CARD} bezahlt, die Buchung erscheint doppelt.",
        "Bitte überweisen Sie den Betrag auf {IBAN}.",
        "Der Server {IP} antwortet seit heute Morgen nicht mehr.",
        "Unser Token {SECRET} ist versehentlich im Ticket gelandet.",
        "Bestellung {order} vom {date_local} ist noch nicht da.",
        "Nach dem Firmware-Update auf {version} startet das Gerät neu.",
    ],
    "fr": [
        "Bonjour, vous pouvez me joindre au {PHONE} en journée.",
        "Mon adresse est {EMAIL} et mon portable {PHONE}.",
        "J'ai payé avec la carte {CARD} et j'ai été débité deux fois.",
        "Merci de virer le remboursement sur l'IBAN {IBAN}.",
        "La passerelle {IP} ne répond plus depuis ce matin.",
        "Voici la clé {SECRET} pour le test, à supprimer ensuite.",
        "Ma commande {order} du {date_local} n'est pas arrivée.",
        "Le pilote {version} fait planter l'imprimante.",
    ],
    "es": [
        "Hola, llámame al {PHONE} cuando puedas.",
        "Mi correo es {EMAIL} y mi teléfono {PHONE}.",
        "Pagué con la tarjeta {CARD} y me cobraron dos veces.",
        "Por favor, haced la transferencia a {IBAN}.",
        "El servidor {IP} no responde desde ayer.",
        "He pegado la clave {SECRET} por error en el chat.",
        "El pedido {order} sigue sin llegar, factura {invoice}.",
        "Instalé el controlador {version} y la pantalla parpadea.",
    ],
    "it": [
        "Buongiorno, chiamatemi al {PHONE} per favore.",
        "La mia email è {EMAIL}, cellulare {PHONE}.",
        "Ho pagato con la carta {CARD} ma l'addebito è doppio.",
        "Effettuate il bonifico su {IBAN} entro {date_local}.",
        "Il router {IP} si riavvia di continuo.",
        "Ho incollato per sbaglio il token {SECRET} nel ticket.",
        "L'ordine {order} non è ancora arrivato, fattura {invoice}.",
        "Dopo il firmware {version} il dispositivo non si accende.",
    ],
    "nl": [
        "Goedemiddag, u kunt mij bellen op {PHONE}.",
        "Mijn e-mailadres is {EMAIL}, mobiel {PHONE}.",
        "Ik heb betaald met kaart {CARD} maar het bedrag is twee keer afgeschreven.",
        "Graag het bedrag overmaken naar {IBAN}.",
        "De server {IP} reageert niet meer.",
        "Ik heb de sleutel {SECRET} per ongeluk gedeeld.",
        "Bestelling {order} is nog niet geleverd.",
        "Na de driver {version} werkt de scanner niet meer.",
    ],
    "pt": [
        "Olá, me ligue no {PHONE} depois das 18h.",
        "Meu e-mail é {EMAIL} e meu celular {PHONE}.",
        "Paguei com o cartão {CARD} e a cobrança veio duplicada.",
        "Faça a transferência para o IBAN {IBAN}.",
        "O servidor {IP} parou de responder.",
        "Colei a chave {SECRET} no chat sem querer.",
        "O pedido {order} ainda não chegou, nota {invoice}.",
        "Depois do driver {version} o monitor pisca.",
    ],
    "ja": [
        "お世話になっております。電話番号は{PHONE}です。",
        "メールアドレスは{EMAIL}です。よろしくお願いします。",
        "カード番号は{CARD}です。二重請求されています。",
        "振込先は{IBAN}でお願いします。",
        "サーバー{IP}に接続できません。",
        "APIキー{SECRET}を誤って共有しました。",
        "注文番号{order}の商品がまだ届きません。",
        "ドライバ{version}に更新したら再起動しました。",
    ],
}
TUNE_SHARED = [
    "{date}T{time}Z INFO login ok user={EMAIL} ip={IP}",
    "{date} {time} WARN payment failed card={CARD} amount={amount}",
    '{{"name": "{name}", "email": "{EMAIL}", "phone": "{PHONE}"}}',
    '{{"ssn": "{SSN}", "city": "{city}"}}',
    "OPENAI_API_KEY={SECRET}",
    "{name};{EMAIL};{PHONE};{city}",
    "From: {name} <{EMAIL}>",
    "iban={IBAN} bic=DEUTDEFF",
    "build {version} released, {count} tests passed",
    "uuid={uuid} commit={sha}",
    "EAN {ean}, ISBN {isbn}, qty {count}",
    "card {luhn_broken} declined (invalid number)",
    "IBAN {iban_broken} rejected: checksum",
    "invalid SSN {bad_ssn} in form",
    "listening on port {port}, pid {count}",
    "invoice {invoice} due {date}",
    "max_tokens={count} temperature=0.7 api_key=${{OPENAI_API_KEY}}",
    "ts={ms} latency_ms={count}",
]

HELDOUT_SENTENCES: dict[str, list[str]] = {
    "en": [
        "Can someone ring {name} at {PHONE} before 5pm?",
        "New contact details: {EMAIL}, tel. {PHONE}",
        "Customer read out the card number {CARD} on the call.",
        "Refund should go to account {IBAN} (checked twice).",
        "Social security number: {SSN}",
        "Traffic spike from {IP} again, blocking it.",
        "Leaked credential in the repo: {SECRET}",
        "Tracking {order} still shows 'in transit'.",
        "Firmware {version} fixed the boot loop.",
        "Meeting moved to {date}, room {count}.",
    ],
    "de": [
        "Herr {name} ist unter {PHONE} erreichbar.",
        "Kontakt: {EMAIL} / Tel. {PHONE}",
        "Kreditkarte {CARD} wurde abgelehnt.",
        "Kontoverbindung: {IBAN}",
        "Zugriff von {IP} blockiert.",
        "Bitte den Schlüssel {SECRET} sofort rotieren.",
        "Kundennummer {ticket}, Rechnung {invoice}.",
        "Treiber {version} behebt den Absturz.",
        "Termin am {date_local} um {time}.",
    ],
    "fr": [
        "Rappeler M. {name} au {PHONE} demain.",
        "Coordonnées : {EMAIL}, tél. {PHONE}",
        "Carte bancaire {CARD} refusée au paiement.",
        "RIB / IBAN : {IBAN}",
        "Connexion suspecte depuis {IP}.",
        "Jeton exposé dans les logs : {SECRET}",
        "Numéro de commande {order}, facture {invoice}.",
        "Version du SDK {version} installée.",
        "Rendez-vous le {date_local} à {time}.",
    ],
    "es": [
        "Contacto de {name}: {PHONE}",
        "Escríbeme a {EMAIL} o llama al {PHONE}.",
        "Número de tarjeta: {CARD}",
        "Cuenta para el reembolso: {IBAN}",
        "Intentos de acceso desde {IP}.",
        "Rotad la credencial {SECRET} cuanto antes.",
        "Referencia del pedido {order}.",
        "Firmware {version} instalado en todos los equipos.",
        "Cita el {date_local} a las {time}.",
    ],
    "it": [
        "Il signor {name} risponde al {PHONE}.",
        "Recapiti: {EMAIL}, tel. {PHONE}",
        "Carta di credito {CARD} rifiutata.",
        "Coordinate bancarie: {IBAN}",
        "Accesso bloccato da {IP}.",
        "Chiave esposta: {SECRET}",
        "Numero ordine {order}, pratica {ticket}.",
        "Driver {version} aggiornato.",
        "Appuntamento il {date_local} alle {time}.",
    ],
    "nl": [
        "Mevrouw {name} is bereikbaar op {PHONE}.",
        "Contactgegevens: {EMAIL}, tel. {PHONE}",
        "Creditcard {CARD} geweigerd.",
        "Rekeningnummer: {IBAN}",
        "Verdachte login vanaf {IP}.",
        "Gelekte sleutel: {SECRET}",
        "Factuur {invoice} voor bestelling {order}.",
        "Firmware {version} geïnstalleerd.",
        "Afspraak op {date_local} om {time}.",
    ],
    "pt": [
        "O cliente {name} atende no {PHONE}.",
        "Contato: {EMAIL}, telefone {PHONE}",
        "Cartão de crédito {CARD} recusado.",
        "Dados bancários: {IBAN}",
        "Acesso bloqueado de {IP}.",
        "Chave vazada: {SECRET}",
        "Protocolo {ticket}, pedido {order}.",
        "Firmware {version} instalado.",
        "Consulta em {date_local} às {time}.",
    ],
    "ja": [
        "{name}様の連絡先は{PHONE}です。",
        "担当者のメールは{EMAIL}、電話は{PHONE}です。",
        "クレジットカード{CARD}が利用できませんでした。",
        "口座{IBAN}宛にご送金ください。",
        "{IP}からの不正アクセスを遮断しました。",
        "トークン{SECRET}が漏洩しました。",
        "注文{order}の発送状況を教えてください。",
        "ファームウェア{version}を適用しました。",
        "{date_local}{time}に伺います。",
    ],
}
HELDOUT_SHARED = [
    "[{date} {time}] auth: accepted login for {EMAIL} from {IP} port {port}",
    "{date} {time} ERROR charge declined pan={CARD} cur=EUR",
    '{{"customer": {{"mail": "{EMAIL}", "tel": "{PHONE}"}}, "items": {count}}}',
    '{{"social_security_number": "{SSN}", "employer": "{company}"}}',
    "SS#: {SSN}",
    "HF_TOKEN={SECRET}",
    "export STRIPE_SECRET={SECRET}",
    '"{name}","{PHONE}","{EMAIL}","{city}"',
    "Reply-To: {EMAIL}",
    "To: {name} <{EMAIL}>; Cc: {EMAIL}",
    "payout_iban: {IBAN}",
    "SDK {version} adds retries, {count} fixes",
    "request_id={uuid} sha256={sha}",
    "GTIN {ean} ISBN {isbn}",
    "Luhn check failed for {luhn_broken}",
    "bad IBAN {iban_broken}",
    "SSN {bad_ssn} is not issued",
    "order_id={order} invoice_no={invoice}",
    "v{semver} published at {ms}",
    "token_type=bearer max_tokens={count}",
]


# ---------------------------------------------------------------- rendering
_FIELD = re.compile(r"\{(\w+)\}")


def render(template: str, fake: Faker, rng: random.Random) -> dict[str, object]:
    """The template filled in: text and the labelled spans of its upper-case fields."""
    template = template.replace("{{", "\x01").replace("}}", "\x02")
    text, entities, at = "", [], 0
    for m in _FIELD.finditer(template):
        text += template[at : m.start()]
        name = m.group(1)
        if name in VALUES:
            value = VALUES[name](fake, rng)
            entities.append({"kind": name, "start": len(text), "end": len(text) + len(value)})
        else:
            value = FILLERS[name](fake, rng)
        text += value
        at = m.end()
    text = (text + template[at:]).replace("\x01", "{").replace("\x02", "}")
    return {"text": text, "entities": entities}


def build(
    sentences: dict[str, list[str]], shared: list[str], seed: int, lines_per_locale: int, split: str
) -> list[dict[str, object]]:
    rows = []
    for i, locale in enumerate(LOCALES):
        fake = Faker(locale)
        fake.seed_instance(seed * 100 + i)
        rng = random.Random(seed * 100 + i)
        own = sentences[LANGUAGE[locale]]
        for n in range(lines_per_locale):
            template = own[n % len(own)] if n % 3 else rng.choice(shared)
            row = render(template, fake, rng)
            rows.append({**row, "locale": locale, "split": split})
    return rows


def main() -> None:
    if os.environ.get("PYTHONHASHSEED") != "0":
        # A few Faker providers draw from sets, whose order follows the string hash seed: fix it, so
        # the files come out the same on every run.
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)  # noqa: S606 - this script, re-run
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=OUT, help=f"folder for both files (default {OUT})")
    out_dir = parser.parse_args().out
    sets = {
        "faker_tune.jsonl": build(TUNE_SENTENCES, TUNE_SHARED, seed=1, lines_per_locale=60, split="tune"),
        "faker_heldout.jsonl": build(
            HELDOUT_SENTENCES, HELDOUT_SHARED, seed=2, lines_per_locale=100, split="heldout"
        ),
    }
    for name, rows in sets.items():
        with (out_dir / name).open("w", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        entities = sum(len(r["entities"]) for r in rows)  # type: ignore[arg-type]
        negatives = sum(1 for r in rows if not r["entities"])
        print(f"{name}: {len(rows)} lines, {entities} entities, {negatives} lines with none")


if __name__ == "__main__":
    main()
