"""Personal data typed into comments is masked before storage."""

import pytest

from barometer.privacy import EMAIL_MASK, PHONE_MASK, mask_personal_data


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("écrivez à jean.dupont@example.org svp", f"écrivez à {EMAIL_MASK} svp"),
        ("mail: a_b+c@mairie-exemple.fr.", f"mail: {EMAIL_MASK}."),
        ("appelez le 06 12 34 56 78", f"appelez le {PHONE_MASK}"),
        ("tél 06.12.34.56.78 ou 0612345678", f"tél {PHONE_MASK} ou {PHONE_MASK}"),
        ("+33 6 12 34 56 78 merci", f"{PHONE_MASK} merci"),
        ("0033 1-23-45-67-89", PHONE_MASK),
        ("+33 (0)1 23 45 67 89", PHONE_MASK),
    ],
)
def test_emails_and_phone_numbers_are_masked(text, expected):
    assert mask_personal_data(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Ouvert de 9h à 12h30, bassin de 25 m",
        "Attendu 45 minutes le 12/03/2025",
        "J'ai 2 enfants de 3 et 5 ans",
        "Dossier n° 2024-118",
    ],
)
def test_ordinary_numbers_are_kept(text):
    assert mask_personal_data(text) == text
