"""The resident's survey over HTTP: stored once, refused clearly, never doubled."""

import http.client
import re
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from barometer.extensions import db
from barometer.loader import load_surveys
from barometer.models import Answer, Channel, Response, Service, Site
from barometer.respond.services import clear_cache, form_token, get_survey
from barometer.templating import in_french
from tests.helpers import VALID, checked, count_rows, edit_yaml, errors, form_tokens, open_form, question_of, service_of


def test_a_valid_submission_is_stored_with_its_answers(surveys, client):
    _, tokens = open_form(client, "/s/piscine/bassin-nord?c=qr")
    page = client.post("/s/piscine/bassin-nord?c=qr", data={**VALID, **tokens, "channel": "qr"})
    assert page.status_code == 200
    assert "Merci !" in page.get_data(as_text=True)
    with surveys.app_context():
        response = db.session.execute(select(Response)).scalar_one()
        site = db.session.get(Site, response.site_id)
        stored = {(a.question_key, a.value, a.choice, a.text) for a in response.answers}
        assert response.channel == Channel.qr
        assert site.code == "bassin-nord"
        assert (response.age_band, response.sex, response.area, response.frequency) == (
            "a30_44",
            "f",
            "nord",
            "regular",
        )
    assert stored == {
        ("overall", 4.0, None, None),
        ("courtesy", 5.0, None, None),
        ("waiting_time", 2.0, None, None),
        ("clarity", None, "na", None),
        ("recommend", 8.0, None, None),
        ("important_attributes", None, "waiting_time", None),
        ("important_attributes", None, "ease", None),
        ("comment", None, None, "Écrivez-moi : [e-mail masqué] ou [téléphone masqué]"),
        ("crowding", 1.0, None, None),
        ("crowding_time", None, "evening", None),
    }


def test_only_overall_is_required(surveys, client):
    _, tokens = open_form(client, "/s/etat-civil")
    assert client.post("/s/etat-civil", data={"overall": "3", **tokens}).status_code == 200
    assert count_rows(surveys) == 1 and count_rows(surveys, Answer) == 1


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({}, "overall", "Veuillez répondre à cette question."),
        ({"overall": "6"}, "overall", "Choisissez une valeur entre 1 et 5."),
        ({"overall": "0"}, "overall", "Choisissez une valeur entre 1 et 5."),
        ({"overall": "4", "recommend": "11"}, "recommend", "Choisissez une valeur entre 0 et 10."),
        ({"overall": "4", "age_band": "a12_14"}, "age_band", "Choisissez une des réponses proposées."),
        ({"overall": "4", "area": "ailleurs"}, "area", "Choisissez une des réponses proposées."),
        ({"overall": "4", "comment": "x" * 1001}, "comment", "Votre texte dépasse 1000 caractères : raccourcissez-le."),
        (
            {"overall": "4", "important_attributes": ["ease", "clarity", "courtesy", "fairness"]},
            "important_attributes",
            "Choisissez au plus 3 réponses.",
        ),
    ],
    ids=[
        "missing-overall",
        "above-scale",
        "below-scale",
        "nps-out-of-range",
        "unknown-choice",
        "unknown-area",
        "text-too-long",
        "too-many-choices",
    ],
)
def test_an_invalid_answer_is_explained_and_the_others_kept(surveys, client, data, field, message):
    _, tokens = open_form(client)
    kept = {"courtesy": "5", "comment": "Bassin agréable", "sex": "m"}
    if "comment" in data:
        kept.pop("comment")
    page = client.post("/s/piscine", data={**kept, **data, **tokens})
    html = page.get_data(as_text=True)
    assert page.status_code == 422
    assert errors(html) == [message]
    assert f'href="#{field}' in html  # the summary links to the field in error
    assert 'role="alert"' in html
    assert 'name="courtesy" id="courtesy-4" value="5" checked' in html
    assert 'name="sex" id="sex-1" value="m" checked' in html
    if "comment" in kept:
        assert ">Bassin agréable</textarea>" in html
    assert count_rows(surveys) == 0


def test_english_messages_with_lang_en(surveys, client):
    html, tokens = open_form(client, "/s/piscine?lang=en")
    assert '<html lang="en">' in html and "Overall, how satisfied are you" in html
    page = client.post("/s/piscine?lang=en", data={"overall": "9", **tokens})
    assert errors(page.get_data(as_text=True)) == ["Choose a value between 1 and 5."]


def test_a_french_name_in_an_english_sentence_is_marked_french_and_escaped(surveys, client):
    html, tokens = open_form(client, "/s/piscine?lang=en")
    thanks = client.post("/s/piscine?lang=en", data={"overall": "4", **tokens}).get_data(as_text=True)
    assert '<span lang="fr">Piscine municipale</span>' in thanks
    html, tokens = open_form(client, "/s/piscine")
    thanks = client.post("/s/piscine", data={"overall": "4", **tokens}).get_data(as_text=True)
    assert "« Piscine municipale »" in thanks and '<span lang="fr">' not in thanks
    assert str(in_french("Bains <b> & Co", "en")) == '<span lang="fr">Bains &lt;b&gt; &amp; Co</span>'


def test_browser_language_is_followed_and_french_is_the_default(surveys, client):
    html, _ = open_form(client, "/s/piscine", **{"Accept-Language": "en-GB,en;q=0.9"})
    assert '<html lang="en">' in html
    html, _ = open_form(client, "/s/piscine", **{"Accept-Language": "de-DE"})
    assert '<html lang="fr">' in html and "Globalement, êtes-vous satisfait(e) de ce service ?" in html


def test_double_tap_refresh_and_retry_store_one_response(surveys, client):
    _, tokens = open_form(client)
    data = {**VALID, **tokens}
    pages = [client.post("/s/piscine", data=data) for _ in range(3)]
    assert [p.status_code for p in pages] == [200, 200, 200]
    assert all("Merci !" in p.get_data(as_text=True) for p in pages)
    assert count_rows(surveys) == 1
    assert count_rows(surveys, Answer) == 10


def test_a_replayed_token_with_other_answers_changes_nothing(surveys, client):
    _, tokens = open_form(client)
    client.post("/s/piscine", data={"overall": "5", **tokens})
    page = client.post("/s/piscine", data={"overall": "1", "comment": "autre", **tokens})
    assert "Merci !" in page.get_data(as_text=True)
    assert count_rows(surveys) == 1
    with surveys.app_context():
        assert db.session.execute(select(Answer.value).where(Answer.question_key == "overall")).scalar_one() == 5.0


def test_two_forms_make_two_responses(surveys, client):
    for _ in range(2):
        _, tokens = open_form(client)
        client.post("/s/piscine", data={"overall": "4", **tokens})
    assert count_rows(surveys) == 2


def refused(app, client, data: dict, message: str) -> str:
    """Send `data` to the pool's survey: a 400 that says `message`, nothing stored; its page."""
    page = client.post("/s/piscine", data=data)
    html = page.get_data(as_text=True)
    assert page.status_code == 400
    assert message in html
    assert count_rows(app) == 0
    return html


def test_a_forged_token_is_refused_and_answers_kept(surveys, client):
    _, tokens = open_form(client)
    data = {"overall": "4", "courtesy": "3", **tokens, "token": "forged"}
    html = refused(surveys, client, data, "Le formulaire n'a pas pu être vérifié")
    assert checked(html, "overall", "4") and checked(html, "courtesy", "3")


def test_a_missing_token_is_refused(surveys, client):
    html = refused(surveys, client, {"overall": "4"}, "Le formulaire n'a pas pu être vérifié")
    assert checked(html, "overall", "4")


def test_an_expired_form_keeps_answers(surveys, app_factory):
    app = app_factory(SURVEY_TOKEN_MAX_AGE=-1)
    client = app.test_client()
    _, tokens = open_form(client)
    html = refused(app, client, {"overall": "2", **tokens}, "Le formulaire a expiré. Vos réponses sont conservées")
    assert checked(html, "overall", "2")


CROSS_SITE = "Ces réponses ont été envoyées depuis un autre site : rien n'a été enregistré."


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://localhost"},  # a neighbouring subdomain
        {"Origin": "https://attaquant.example"},
        {"Origin": "http://localhost:8080"},  # another port is another origin
        {"Origin": "https://localhost"},  # and so is another scheme
        {"Origin": "null"},  # a sandboxed frame or a file
        {"Referer": "https://attaquant.example/page"},
    ],
    ids=["fetch-cross-site", "fetch-same-site", "origin", "port", "scheme", "null-origin", "referer"],
)
def test_a_submission_from_another_site_is_refused_and_answers_kept(surveys, client, headers):
    """Cross-site request forgery: another site's page cannot make a browser answer."""
    _, tokens = open_form(client)
    page = client.post("/s/piscine", data={"overall": "4", **tokens}, headers=headers)
    html = page.get_data(as_text=True)
    assert page.status_code == 400 and CROSS_SITE in html
    assert count_rows(surveys) == 0
    assert checked(html, "overall", "4")
    # The page shown again is this site's own: sent from it, the answers are stored.
    retry = client.post(
        "/s/piscine", data={"overall": "4", **form_tokens(html)}, headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert retry.status_code == 200 and count_rows(surveys) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"},
        {"Sec-Fetch-Site": "none"},  # typed or bookmarked by the resident
        {"Origin": "http://localhost"},  # a browser older than Sec-Fetch-Site
        {"Origin": "https://avis.saint-aubin.example"},  # the public address, behind a proxy
        {"Referer": "http://localhost/s/piscine"},
        {},  # no browser page sent it
    ],
    ids=["fetch-same-origin", "fetch-none", "origin", "public-origin", "referer", "no-browser"],
)
def test_a_submission_from_the_survey_itself_is_stored(surveys, app_factory, headers):
    app = app_factory(
        PUBLIC_BASE_URL="https://avis.saint-aubin.example", TRUSTED_HOSTS=["avis.saint-aubin.example", "localhost"]
    )
    client = app.test_client()
    _, tokens = open_form(client)
    assert client.post("/s/piscine", data={"overall": "4", **tokens}, headers=headers).status_code == 200
    assert count_rows(app) == 1


def test_a_filled_honeypot_is_refused(surveys, client):
    _, tokens = open_form(client)
    refused(
        surveys,
        client,
        {"overall": "4", "website": "http://spam.example", **tokens},
        "Votre réponse n'a pas été enregistrée",
    )


def submit_in_a_row(client, times: int, answers: dict) -> list:
    """Open the form and send it, `times` times from one address; the replies."""
    replies = []
    for _ in range(times):
        _, tokens = open_form(client)
        replies.append(client.post("/s/piscine", data={**answers, **tokens}))
    return replies


def test_submissions_are_rate_limited_with_a_french_message_and_answers_kept(surveys, app_factory):
    app = app_factory(SURVEY_RATE_LIMIT="3 per minute")
    client = app.test_client()
    statuses = submit_in_a_row(client, 4, {"overall": "4", "courtesy": "2"})
    assert [p.status_code for p in statuses] == [200, 200, 200, 429]
    html = statuses[-1].get_data(as_text=True)
    assert "Trop de réponses ont été envoyées depuis cette connexion en peu de temps." in html
    assert checked(html, "overall", "4") and checked(html, "courtesy", "2")
    assert count_rows(app) == 3
    # The refusal says when to come back (within the minute); accepted submissions
    # carry no limiter headers.
    assert 1 <= int(statuses[-1].headers["Retry-After"]) <= 60
    assert [p.headers.get("Set-Cookie") for p in statuses] == [None] * 4
    assert not [k for k, _ in statuses[0].headers.items() if k.lower().startswith("x-ratelimit")]
    # Reading the survey is not limited.
    assert client.get("/s/piscine").status_code == 200


def test_a_body_too_large_once_the_limit_is_spent_still_gets_the_limit_page(surveys, app_factory):
    app = app_factory(SURVEY_RATE_LIMIT="1 per minute", MAX_CONTENT_LENGTH=4096)
    client = app.test_client()
    assert submit_in_a_row(client, 1, {"overall": "4"})[0].status_code == 200
    _, tokens = open_form(client)
    page = client.post("/s/piscine", data={"overall": "4", "comment": "x" * 5000, **tokens})
    assert page.status_code == 429
    assert "Trop de réponses" in page.get_data(as_text=True)
    assert count_rows(app) == 1


def test_every_limit_of_the_setting_counts_and_the_longest_says_when_to_return(surveys, app_factory):
    app = app_factory(SURVEY_RATE_LIMIT="10 per minute;2 per hour")
    statuses = submit_in_a_row(app.test_client(), 3, {"overall": "4"})
    assert [p.status_code for p in statuses] == [200, 200, 429]
    assert 60 < int(statuses[-1].headers["Retry-After"]) <= 3600
    assert count_rows(app) == 2


def test_submissions_are_not_limited_when_limiting_is_off(surveys, app_factory):
    app = app_factory(SURVEY_RATE_LIMIT="1 per minute", RATELIMIT_ENABLED=False)
    statuses = submit_in_a_row(app.test_client(), 3, {"overall": "4"})
    assert [p.status_code for p in statuses] == [200, 200, 200]
    assert count_rows(app) == 3


def test_posts_to_an_unknown_survey_count_and_get_the_plain_limit_page(surveys, app_factory):
    client = app_factory(SURVEY_RATE_LIMIT="1 per minute").test_client()
    replies = [client.post("/s/nope", data={"overall": "4"}) for _ in range(2)]
    assert [r.status_code for r in replies] == [404, 429]
    assert "Trop de demandes ont été envoyées depuis cette connexion" in replies[1].get_data(as_text=True)
    assert 1 <= int(replies[1].headers["Retry-After"]) <= 60


def test_one_visitors_flashed_message_never_reaches_the_shared_survey_pages(surveys, app_factory):
    app = app_factory(SURVEY_CACHE_SECONDS=60)  # the rendered pages are shared
    first, second = app.test_client(), app.test_client()
    with first.session_transaction() as session:
        session["_flashes"] = [("message", "Message pour le premier visiteur")]
    html, tokens = open_form(first)
    thanks = first.post("/s/piscine", data={"overall": "4", **tokens}).get_data(as_text=True)
    for page in (html, thanks, open_form(second)[0]):
        assert "Message pour le premier visiteur" not in page


def test_no_ip_address_is_stored(surveys, client):
    _, tokens = open_form(client)
    client.post("/s/piscine", data={"overall": "4", **tokens}, environ_base={"REMOTE_ADDR": "203.0.113.77"})
    columns = {c.name for c in Response.__table__.columns} | {c.name for c in Answer.__table__.columns}
    assert not {"ip", "ip_address", "remote_addr", "user_agent"} & columns
    with surveys.app_context():
        row = db.session.execute(select(Response)).scalar_one()
        assert "203.0.113.77" not in repr([getattr(row, c) for c in columns if hasattr(row, c)])


def test_unknown_service_or_site_gets_a_friendly_404(surveys, client):
    for url in ("/s/inconnu", "/s/piscine/inconnu"):
        page = client.get(url)
        assert page.status_code == 404
        assert "Ce questionnaire ou cette page n'existe pas" in page.get_data(as_text=True)


def test_a_closed_survey_says_so_and_takes_nothing(surveys, client):
    page = client.get("/s/archives")
    assert page.status_code == 410
    assert "Cette enquête est close" in page.get_data(as_text=True)
    _, tokens = open_form(client)
    assert client.post("/s/archives", data={"overall": "4", **tokens}).status_code == 410
    assert count_rows(surveys) == 0


def test_page_is_accessible_markup_without_javascript(surveys, client):
    html, _ = open_form(client)
    # every radio group is a fieldset with a legend; every input has a label
    assert html.count("<fieldset") == html.count("<legend>") > 10
    inputs = re.findall(r'<input type="(?:radio|checkbox)"[^>]*>', html)
    wrapped = re.findall(r'<label class="opt[^"]*"><input type="(?:radio|checkbox)"[^>]*>', html)
    assert len(inputs) > 50 and len(wrapped) == len(inputs)  # every option sits inside its label
    ids = re.findall(r'<input type="(?:radio|checkbox)" name="[^"]+" id="([^"]+)"', html)
    assert len(set(ids)) == len(inputs)  # ids are unique, so summary links reach one field
    assert '<label class="ql" for="comment">' in html
    # follow-up questions are on the page, with the condition in words
    assert "Si vous avez répondu « Oui » à la question précédente." in html


def test_each_scale_of_a_section_is_explained_to_the_questions_on_it(app, tree, client):
    """Two scales in one section: each question is described by its own scale's hint."""
    agreement = {
        "points": [
            {"value": v, "label": {"fr": fr, "en": en}}
            for v, fr, en in [
                (1, "Pas du tout d'accord", "Strongly disagree"),
                (2, "Plutôt pas d'accord", "Disagree"),
                (3, "Plutôt d'accord", "Agree"),
                (4, "Tout à fait d'accord", "Strongly agree"),
            ]
        ]
    }

    def add_agreement(doc):
        doc["scales"] = {"agreement4": agreement}
        doc["questions"].append(
            {
                "key": "would_return",
                "type": "scale",
                "scale": "agreement4",
                "section": "experience",
                "label": {"fr": "Je reviendrai", "en": "I will come back"},
            }
        )

    edit_yaml(tree / "questionnaires" / "piscine.yaml", add_agreement)
    with app.app_context():
        load_surveys(tree)
    html, _ = open_form(client)
    assert re.findall(r'<p class="hint" id="experience-scale-(\w+)">([^<]+)</p>', html) == [
        ("satisfaction5", "Notez de 1 (pas du tout satisfait) à 5 (très satisfait)."),
        ("agreement4", "Notez de 1 (pas du tout d&#39;accord) à 4 (tout à fait d&#39;accord)."),
    ]
    described = dict(re.findall(r'id="q-(\w+)" aria-describedby="([^"]+)"', html))
    assert described["courtesy"] == "experience-scale-satisfaction5"
    assert described["would_return"] == "experience-scale-agreement4"


def test_qr_code_and_poster(surveys, client):
    svg = client.get("/s/piscine/qr.svg")
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml"
    assert svg.get_data(as_text=True).lstrip().startswith("<svg")
    site_svg = client.get("/s/creche/les-lutins/qr.svg")
    assert site_svg.status_code == 200 and site_svg.data != client.get("/s/creche/qr.svg").data
    poster = client.get("/s/creche/les-lutins/poster").get_data(as_text=True)
    assert "Crèches municipales" in poster and "Crèche Les Lutins" in poster
    assert "/s/creche/les-lutins/qr.svg" in poster
    assert "http://localhost/s/creche/les-lutins?c=qr" in poster
    assert client.get("/s/inconnu/qr.svg").status_code == 404


@pytest.mark.parametrize("cache_seconds", [0, 30])
def test_each_address_gets_its_own_survey_page(surveys, app_factory, cache_seconds):
    client = app_factory(SURVEY_CACHE_SECONDS=cache_seconds).test_client()
    expected = {
        "/s/piscine": "Piscine municipale",
        "/s/creche/les-lutins": "Crèche Les Lutins",
        "/s/etat-civil": "État civil",
        "/s/mediatheque?lang=en": "Your opinion of the library",
        "/s/mediatheque": "Votre avis sur la médiathèque",
    }
    for _ in range(20):
        for url, text in expected.items():
            html = client.get(url).get_data(as_text=True)
            assert text in html, url
            assert html.count("<h1>") == 1


def test_a_forged_channel_falls_back_to_link(surveys, client):
    _, tokens = open_form(client, "/s/piscine?c=api")
    client.post("/s/piscine", data={"overall": "4", "channel": "api", **tokens})
    with surveys.app_context():
        assert db.session.execute(select(Response.channel)).scalar_one() == Channel.link


def test_a_comment_that_reads_like_a_code_is_stored_as_text(surveys, client):
    _, tokens = open_form(client)
    client.post("/s/piscine", data={"overall": "4", "comment": "na", **tokens})
    with surveys.app_context():
        row = db.session.execute(select(Answer).where(Answer.question_key == "comment")).scalar_one()
        assert (row.text, row.choice) == ("na", None)


def test_an_oversized_submission_is_refused_in_french(surveys, client):
    _, tokens = open_form(client)
    page = client.post("/s/piscine", data={"overall": "4", "comment": "x" * 100_000, **tokens})
    assert page.status_code == 413
    assert "Raccourcissez votre texte" in page.get_data(as_text=True)
    assert count_rows(surveys) == 0


def test_the_time_of_a_response_is_kept_to_the_hour_only(surveys, client):
    _, tokens = open_form(client)
    client.post("/s/piscine", data={"overall": "4", **tokens})
    with surveys.app_context():
        stored = db.session.execute(select(Response.submitted_at)).scalar_one()
    assert (stored.minute, stored.second, stored.microsecond) == (0, 0, 0)
    # The hour is UTC's (SQLite keeps no time zone, PostgreSQL does).
    now = datetime.now(UTC)
    assert timedelta(0) <= now - stored.replace(tzinfo=stored.tzinfo or UTC) < timedelta(hours=1)


def test_survey_pages_are_never_cached_and_carry_security_headers(surveys, client):
    page = client.get("/s/piscine")
    assert page.headers["Cache-Control"] == "no-store"
    assert "Accept-Language" in {v.strip() for v in page.headers["Vary"].split(",")}
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Content-Type-Options"] == "nosniff"


def test_a_resident_gets_no_cookie(surveys, client):
    """No session, no tracking: the form, its errors and the thank-you page set no cookie."""
    _, tokens = open_form(client)
    replies = [
        client.get("/s/piscine"),
        client.post("/s/piscine", data={"courtesy": "3", **tokens}),
        client.post("/s/piscine", data={"overall": "4", **tokens}),
        client.get("/s/piscine/qr.svg"),
        client.get("/s/piscine/poster"),
    ]
    assert [r.status_code for r in replies] == [200, 422, 200, 200, 200]
    assert [r.headers.get("Set-Cookie") for r in replies] == [None] * 5
    assert "et aucun cookie n'est déposé." in replies[0].get_data(as_text=True)
    assert client.get_cookie("session") is None


def _reword_crowding(tree) -> None:
    def change(doc):
        question_of(doc, "crowding")["label"]["fr"] = "Le bassin était-il bondé ?"

    edit_yaml(tree / "questionnaires" / "piscine.yaml", change)


def _stored_versions(app) -> list[int]:
    with app.app_context():
        return db.session.execute(select(Response.version_id)).scalars().all()


def test_a_form_left_open_across_a_new_version_is_shown_again_then_stored_under_it(app, tree, client):
    with app.app_context():
        load_surveys(tree)
    _, tokens = open_form(client)
    _reword_crowding(tree)
    with app.app_context():
        load_surveys(tree)
        clear_cache()  # this worker reads the new version at once
        current = get_survey("piscine").version_id
    data = {"overall": "4", "crowding": "1", **tokens}
    html = refused(app, client, data, "Le questionnaire a été mis à jour pendant que vous répondiez.")
    assert "Le bassin était-il bondé ?" in html  # the current questions, the answers kept
    assert checked(html, "overall", "4") and checked(html, "crowding", "1")
    again = client.post("/s/piscine", data={"overall": "4", "crowding": "1", **form_tokens(html)})
    assert again.status_code == 200 and _stored_versions(app) == [current]


def _worker_keeping_the_first_version(app_factory, tree, close: bool = False):
    """A worker that keeps the pool's survey in memory as first read, after a new version
    (and, with `close`, the service closed) was loaded; and the token of a form shown by
    a worker that read the new version. Returns (app, client, token, new version id)."""
    app = app_factory(SURVEY_CACHE_SECONDS=3600)
    client = app.test_client()
    with app.app_context():
        load_surveys(tree)
    open_form(client)  # this worker now keeps the first version in memory
    _reword_crowding(tree)
    if close:
        edit_yaml(
            tree / "services" / "demo-commune.yaml",
            lambda d: service_of(d, "piscine").update(open=False),
        )
    with app.app_context():
        load_surveys(tree)
        service = db.session.execute(select(Service).where(Service.slug == "piscine")).scalar_one()
        current = service.questionnaire.current.id
    with app.test_request_context():
        kept = get_survey("piscine")
        assert kept.version_id != current and kept.is_open  # the kept copy is the old one
        token = form_token(replace(kept, version_id=current))
    return app, client, token, current


def test_a_worker_that_kept_the_old_version_judges_a_new_form_on_the_new_one(app_factory, tree):
    app, client, token, current = _worker_keeping_the_first_version(app_factory, tree)
    page = client.post("/s/piscine", data={"overall": "4", "token": token})
    assert page.status_code == 200 and _stored_versions(app) == [current]


def test_a_worker_that_kept_an_open_survey_refuses_a_new_form_once_it_is_closed(app_factory, tree):
    app, client, token, _ = _worker_keeping_the_first_version(app_factory, tree, close=True)
    page = client.post("/s/piscine", data={"overall": "4", "token": token})
    assert page.status_code == 410 and "Cette enquête est close" in page.get_data(as_text=True)
    assert count_rows(app) == 0


def _post_chunked(app, url: str, body: bytes) -> tuple[int, str]:
    """POST `body` in chunks, without Content-Length, to the app behind a real HTTP server."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        chunks = iter([body[i : i + 1000] for i in range(0, len(body), 1000)])
        connection.request("POST", url, body=chunks, headers={"Content-Type": FORM}, encode_chunked=True)
        reply = connection.getresponse()
        return reply.status, reply.read().decode()
    finally:
        server.shutdown()
        thread.join()


FORM = "application/x-www-form-urlencoded"


def test_a_chunked_body_past_the_limit_is_refused_not_cut(surveys, app_factory):
    """Read up to the limit only, its start would be a valid response: refused whole."""
    app = app_factory(MAX_CONTENT_LENGTH=4096)
    _, tokens = open_form(app.test_client())
    start = urlencode({"overall": "4", **tokens})
    status, html = _post_chunked(app, "/s/piscine", f"{start}&padding={'x' * 10_000}".encode())
    assert status == 413 and "Raccourcissez votre texte" in html
    assert count_rows(app) == 0
    status, html = _post_chunked(app, "/s/piscine", f"{start}&comment=court".encode())
    assert status == 200 and "Merci !" in html
    assert count_rows(app) == 1


def test_a_form_of_one_site_is_not_taken_at_another(surveys, client):
    """The token names the site its form was shown at; a response belongs there."""
    _, lutins = open_form(client, "/s/creche/les-lutins")
    for url in ("/s/creche/arc-en-ciel", "/s/creche"):
        page = client.post(url, data={"overall": "4", **lutins})
        assert page.status_code == 400
        assert "Le formulaire n'a pas pu être vérifié" in page.get_data(as_text=True)
    _, service = open_form(client, "/s/creche")
    assert client.post("/s/creche/les-lutins", data={"overall": "4", **service}).status_code == 400
    assert count_rows(surveys) == 0
    assert client.post("/s/creche/les-lutins", data={"overall": "4", **lutins}).status_code == 200
    with surveys.app_context():
        stored = db.session.execute(select(Response.site_id)).scalar_one()
        assert db.session.get(Site, stored).code == "les-lutins"


def test_the_public_address_is_the_only_host_served_and_printed(surveys, app_factory):
    client = app_factory(PUBLIC_BASE_URL="https://avis.saint-aubin.example").test_client()
    assert client.get("/s/piscine", headers={"Host": "attaquant.example"}).status_code == 400
    assert client.get("/s/piscine/poster", headers={"Host": "attaquant.example"}).status_code == 400
    poster = client.get("/s/piscine/poster", headers={"Host": "avis.saint-aubin.example"}).get_data(as_text=True)
    assert "https://avis.saint-aubin.example/s/piscine?c=qr" in poster


def test_trusted_hosts_are_served_and_printed_and_others_refused(surveys, app_factory):
    client = app_factory(TRUSTED_HOSTS=["avis.example", "localhost"]).test_client()
    assert client.get("/s/piscine/qr.svg", headers={"Host": "attaquant.example"}).status_code == 400
    poster = client.get("/s/piscine/poster", headers={"Host": "avis.example"}).get_data(as_text=True)
    assert "http://avis.example/s/piscine?c=qr" in poster


def test_without_a_public_address_only_this_machine_is_printed(surveys, client):
    """No setting: any host is served, but a poster or QR code is only made for this
    machine's own address; another `Host` header would print the sender's choice."""
    for path in ("/s/piscine/poster", "/s/piscine/qr.svg"):
        refused = client.get(path, headers={"Host": "attaquant.example"})
        assert refused.status_code == 400 and "attaquant" not in refused.get_data(as_text=True)
        assert "renseignez PUBLIC_BASE_URL ou TRUSTED_HOSTS" in refused.get_data(as_text=True)
    assert client.get("/s/piscine", headers={"Host": "attaquant.example"}).status_code == 200
    poster = client.get("/s/piscine/poster", headers={"Host": "127.0.0.1:8000"}).get_data(as_text=True)
    assert "http://127.0.0.1:8000/s/piscine?c=qr" in poster


def test_a_closed_service_or_site_has_no_poster_nor_qr_code(surveys, client):
    with surveys.app_context():
        site = db.session.execute(select(Site).where(Site.code == "bassin-nord")).scalar_one()
        site.is_open = False
        db.session.commit()
    for base in ("/s/archives", "/s/piscine/bassin-nord"):
        for page in (client.get(f"{base}/poster"), client.get(f"{base}/qr.svg")):
            assert page.status_code == 410
            assert "Cette enquête est close" in page.get_data(as_text=True)
    assert client.get("/s/piscine/poster").status_code == 200
