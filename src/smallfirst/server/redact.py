"""Masking personal data in logged prompts and answers (`server.redact: true`).

Reuses the rules router's PII patterns, so "what counts as personal data" has one definition.
A card-shaped digit run is masked whether or not it passes Luhn: a log errs on the side of
hiding. Order matters: e-mails and IBANs before the digit patterns that could eat their parts.
"""

from __future__ import annotations

from smallfirst.routing.rules import PII_PATTERNS

ORDER = ("email", "iban", "card", "ssn", "phone")


def redact(text: str) -> str:
    """`text` with each e-mail, IBAN, card, SSN and phone number replaced by `[kind]`."""
    for kind in ORDER:
        text = PII_PATTERNS[kind].sub(f"[{kind}]", text)
    return text
