"""Masking of personal data that residents type into free-text answers."""

import re
import unicodedata

#: Removed from a comment before it is stored: bidirectional embeddings, overrides and
#: isolates, which make a text read otherwise than it is written (in a report, in an
#: export opened elsewhere), and characters of no width, which hide nothing but can
#: split an address or a number so that masking misses it.
HIDDEN = re.compile("[\u00ad\u180e\u200b\u2060-\u2064\ufeff\u202a-\u202e\u2066-\u2069]")
#: Letters and symbols that print as nothing; a comment of these alone says nothing.
BLANK = frozenset("\u115f\u1160\u2800\u3164\uffa0")

# Written out as "(at)", "[at]", " at ", "(arobase)" or "@" with spaces, and "(dot)",
# "[point]", " dot " for the dots: the usual ways of keeping an address from robots.
_AT = r"(?:\s*@\s*|\s*[(\[{]\s*(?:at|arobase|@)\s*[)\]}]\s*|\s+(?:at|arobase)\s+)"
_DOT = r"(?:\.|\s*[(\[{]\s*(?:dot|point)\s*[)\]}]\s*|\s+(?:dot|point)\s+)"
# The last label of the domain starts with a letter, as every top-level domain does:
# "rendez-vous at 10.30" is no address. An address starts where a word does, and its
# parts are taken whole (possessive): a long word is read once, not once per letter.
EMAIL = re.compile(rf"(?<![\w.+-])[\w.+-]++{_AT}(?:[\w-]++{_DOT})+[^\W\d_][\w-]*", re.IGNORECASE)
# French numbers (0X XX XX XX XX, +33 X ..., 0033 ...) and other international ones,
# with spaces, dots or dashes between groups.
PHONE = re.compile(r"(?<![\w+])(?:(?:\+|00)\d{1,3}[\s.-]?(?:\(0\)[\s.-]?)?\d|0\d)(?:[\s.-]?\d){7,12}(?!\w)")
PERSONAL_DATA = re.compile(f"(?P<email>{EMAIL.pattern})|(?P<phone>{PHONE.pattern})", re.IGNORECASE)
EMAIL_MASK = "[e-mail masqué]"
PHONE_MASK = "[téléphone masqué]"


def mask_personal_data(text: str) -> str | None:
    """A comment as it is stored: hidden characters removed, e-mail addresses and phone
    numbers masked. None when nothing visible is left: the comment is no answer.

    Addresses and numbers are looked for in the comment's compatibility form (NFKC),
    where full-width digits and signs (０６…, ＠) are the ASCII ones; the rest of the
    comment is kept as the resident wrote it.
    """
    text = HIDDEN.sub("", text).strip()
    if not any(unicodedata.category(char)[0] in "LNPS" and char not in BLANK for char in text):
        return None
    folded, origin = _compatibility_form(text)
    kept, start = [], 0
    for found in PERSONAL_DATA.finditer(folded):
        begin, end = origin[found.start()], origin[found.end() - 1] + 1
        kept += [text[start:begin], EMAIL_MASK if found.lastgroup == "email" else PHONE_MASK]
        start = end
    return "".join(kept) + text[start:]


def _compatibility_form(text: str) -> tuple[str, list[int]]:
    """The text in NFKC, character by character, with the index in `text` of each of
    its characters (one character may become several: "…" is "...")."""
    folded, origin = [], []
    for index, char in enumerate(text):
        normal = unicodedata.normalize("NFKC", char)
        folded.append(normal)
        origin += [index] * len(normal)
    return "".join(folded), origin
