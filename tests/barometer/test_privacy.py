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
    ("text", "expected"),
    [
        # Full-width digits and signs, as a phone's keyboard in another script types them.
        ("appelez le ０６１２３４５６７８ merci", f"appelez le {PHONE_MASK} merci"),
        ("tél ０６ １２ ３４ ５６ ７８", f"tél {PHONE_MASK}"),
        ("＋３３ ６ １２ ３４ ５６ ７８", PHONE_MASK),
        ("écrivez à ｊｅａｎ＠ｍａｉｌ．ｆｒ", f"écrivez à {EMAIL_MASK}"),
        # Addresses written so that robots miss them.
        ("écrivez à prénom.nom(at)domaine(dot)fr svp", f"écrivez à {EMAIL_MASK} svp"),
        ("prénom.nom [at] domaine [dot] fr", EMAIL_MASK),
        ("prénom.nom[at]domaine.fr", EMAIL_MASK),
        ("jean.dupont at mail dot fr", EMAIL_MASK),
        ("jean.dupont AT mail.fr", EMAIL_MASK),
        ("jean(arobase)mairie-exemple(point)fr", EMAIL_MASK),
        ("jean arobase mail point fr", EMAIL_MASK),
        ("mon adresse : jean.dupont @ mail.fr, merci", f"mon adresse : {EMAIL_MASK}, merci"),
        ("jean.dupont@ mail.fr", EMAIL_MASK),
        # A character of no width does not hide an address or a number from the mask.
        ("jean\u200b.dupont@mail\u200b.fr", EMAIL_MASK),
        ("06\u200b12\u206034\ufeff56 78", PHONE_MASK),
    ],
)
def test_disguised_emails_and_phone_numbers_are_masked(text, expected):
    assert mask_personal_data(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Ouvert de 9h à 12h30, bassin de 25 m",
        "Attendu 45 minutes le 12/03/2025",
        "J'ai 2 enfants de 3 et 5 ans",
        "Dossier n° 2024-118",
        "Le chat de la gardienne attend à l'état civil, attention à l'attente",
        "Tarif 3.50 € ou 4,20 € la séance, 12.50€ l'abonnement",
        "Venu le 12/05/2024, puis le 05.12.2024 et en 2023-2024",
        "Ouvert 9h-12h et 14h-18h, fermé le 01/05",
        "RDV at 10.30 annulé",
        "Note 4/5 @ la piscine, au point d'accueil",
        "Code postal 06000 Nice, 97200 Fort-de-France",
        "Bassin de 25 m², température 28°C… parfait ｔｒèｓ bien",
    ],
)
def test_ordinary_numbers_and_words_are_kept(text):
    assert mask_personal_data(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bien \u202ereçu\u202c merci", "bien reçu merci"),
        ("\u2066accueil\u2069 \u2067parfait\u2069 \u2068oui\u2069 \u202a1\u202b2\u202d3", "accueil parfait oui 123"),
        ("très\u200b bien\ufeff", "très bien"),
        # Other languages keep the characters they need.
        ("می\u200cخواهم", "می\u200cخواهم"),
        ("merci 👍\u200d", "merci 👍\u200d"),
    ],
)
def test_bidirectional_controls_and_zero_width_characters_are_removed(text, expected):
    assert mask_personal_data(text) == expected


@pytest.mark.parametrize(
    "text",
    ["\u200b", "\u200b\u200c\u200d\u2060\ufeff", " \u202e \u2066\u2069 ", "\u3164\u3164", "\u2800", "\u200e\u200f"],
)
def test_a_comment_of_invisible_characters_only_is_no_answer(text):
    assert mask_personal_data(text) is None
