"""Masking of personal data that residents type into free-text answers."""

import re

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
# French numbers (0X XX XX XX XX, +33 X ..., 0033 ...) and other international ones,
# with spaces, dots or dashes between groups.
PHONE = re.compile(r"(?<![\w+])(?:(?:\+|00)\d{1,3}[\s.-]?(?:\(0\)[\s.-]?)?\d|0\d)(?:[\s.-]?\d){7,12}(?!\w)")
EMAIL_MASK = "[e-mail masqué]"
PHONE_MASK = "[téléphone masqué]"


def mask_personal_data(text: str) -> str:
    """Replace e-mail addresses and phone numbers before a comment is stored."""
    return PHONE.sub(PHONE_MASK, EMAIL.sub(EMAIL_MASK, text))
