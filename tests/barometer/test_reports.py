"""The service manager's pages: who sees what, what a report says, and how it says it.

The first tests run on a few responses made for them; the last ones share one demo
history (module fixture, created after the others have run and emptied their tables) and
check that each planted effect shows on its service's page and exports, and on no other.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from html import unescape

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from barometer import demo
from barometer.charts import svg_cache
from barometer.extensions import db
from barometer.models import Organisation, Role, Service, User
from barometer.reports import services as report_services
from barometer.respond.services import new_token
from barometer.storage import store_responses
from tests.conftest import _make_app, empty_tables
from tests.helpers import valid_submission

PASSWORD = "correct horse battery"
EXPORTS = ("tendance", "criteres", "moteurs", "publics", "comparaison", "sites")


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Caches are keyed by data version; tests empty the tables, so versions start again."""
    report_services.clear_caches()
    svg_cache.clear()
    yield
    report_services.clear_caches()
    svg_cache.clear()


def last_month_start(today: date | None = None) -> date:
    today = today or datetime.now(UTC).date()
    return (today.replace(day=1) - timedelta(days=1)).replace(day=1)


def add_accounts(app) -> None:
    """A manager of the pool (A), a manager of the civil registry (B), a director, an admin."""
    with app.app_context():
        org = db.session.execute(select(Organisation)).scalar_one()
        by_slug = {s.slug: s for s in db.session.execute(select(Service)).scalars()}
        accounts = {
            "a@example.fr": (Role.manager, org.id, ["piscine"]),
            "b@example.fr": (Role.manager, org.id, ["etat-civil"]),
            "dgs@example.fr": (Role.director, org.id, []),
            "admin@example.fr": (Role.admin, None, []),
        }
        for email, (role, org_id, services) in accounts.items():
            user = db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()
            if user is None:
                user = User(email=email, role=role, organisation_id=org_id)
                db.session.add(user)
            user.set_password(PASSWORD)
            user.services = [by_slug[s] for s in services]
        db.session.commit()


def signed_in(app, email: str | None):
    client = app.test_client()
    if email is None:
        return client
    page = client.get("/connexion").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    answer = client.post("/connexion", data={"email": email, "password": PASSWORD, "csrf_token": token})
    assert answer.status_code == 302, email
    return client


def store(app, slug: str, count: int, *, answers: dict | None = None, when: datetime | None = None, site=None):
    """`count` responses to a service's survey, submitted in the last complete month."""
    when = when or datetime.combine(last_month_start(), datetime.min.time(), tzinfo=UTC) + timedelta(days=3)
    base = valid_submission(app, slug, "", answers or {"overall": "4", "courtesy": "5"}, submitted_at=when)
    with app.app_context():
        if site is not None:
            from barometer.models import Site

            base = replace(base, site_id=db.session.execute(select(Site.id).where(Site.code == site)).scalar_one())
        store_responses([replace(base, token=new_token()) for _ in range(count)])


def text_of(html: str) -> str:
    """A page's text without its charts, tags or repeated spaces."""
    html = re.sub(r"<svg.*?</svg>", " ", html, flags=re.S)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


# --------------------------------------------------------------------------- access

ROLES = {
    "anonymous": None,
    "manager A": "a@example.fr",
    "manager B": "b@example.fr",
    "director": "dgs@example.fr",
    "admin": "admin@example.fr",
}
POOL_URLS = [
    "/rapports/piscine",
    "/rapports/piscine/centre-aquatique",
    "/rapports/piscine?grain=quarter",
    "/rapports/piscine/graphiques/trend.svg",
    "/rapports/piscine/graphiques/trend.svg?site=centre-aquatique",
    *[f"/rapports/piscine/tableaux/{t}.{fmt}" for t in EXPORTS for fmt in ("csv", "xlsx")],
    "/rapports/piscine/tableaux/tendance.csv?site=centre-aquatique",
]


@pytest.fixture
def pool_with_answers(surveys):
    add_accounts(surveys)
    store(surveys, "piscine", 40, site="centre-aquatique")
    store(surveys, "piscine", 40, when=datetime.now(UTC) - timedelta(days=70))
    return surveys


@pytest.mark.parametrize("role", ROLES)
def test_every_report_chart_and_export_url_answers_by_role_and_scope(pool_with_answers, role):
    client = signed_in(pool_with_answers, ROLES[role])
    expected = {"anonymous": 302, "manager A": 200, "manager B": 404, "director": 200, "admin": 200}[role]
    for url in POOL_URLS:
        answer = client.get(url)
        assert answer.status_code == expected, f"{role}: GET {url} -> {answer.status_code}"
        if expected == 302:
            assert answer.location.startswith("/connexion")
        if expected == 404:
            assert b"Piscine" not in answer.data
    home = client.get("/rapports/")
    assert home.status_code == (302 if role == "anonymous" else 200)
    if role == "manager B":
        assert "Piscine municipale" not in home.get_data(as_text=True)


def test_an_unknown_site_chart_or_table_is_not_found(pool_with_answers):
    client = signed_in(pool_with_answers, "a@example.fr")
    for url in (
        "/rapports/piscine/inconnu",
        "/rapports/piscine/graphiques/camembert.svg",
        "/rapports/piscine/tableaux/tout.csv",
        "/rapports/piscine/tableaux/tendance.pdf",
        "/rapports/piscine/graphiques/trend.svg?site=inconnu",
        "/rapports/inconnu",
    ):
        assert client.get(url).status_code == 404, url


def test_another_service_appears_in_a_comparison_only_when_the_reader_may_see_it(pool_with_answers):
    """Manager B's civil-registry report never names the pool, in the page or the export;
    the director's may compare services of one policy one by one."""
    store(pool_with_answers, "etat-civil", 40)
    b = signed_in(pool_with_answers, "b@example.fr")
    page = b.get("/rapports/etat-civil").get_data(as_text=True)
    assert "État civil" in page and "Piscine" not in page
    for fmt in ("csv", "xlsx"):
        assert b"Piscine" not in b.get(f"/rapports/etat-civil/tableaux/comparaison.{fmt}").data


# ---------------------------------------------------------------------- the report


def test_the_report_shows_headline_trend_and_comments_of_the_pool(pool_with_answers):
    client = signed_in(pool_with_answers, "a@example.fr")
    page = client.get("/rapports/piscine")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    text = text_of(html)
    # 40 responses last month, every one satisfied: 100 %, with its interval, n and n_eff.
    assert "Usagers satisfaits 100 % IC 95 %" in text
    assert "Réponses (effectif efficace) 40" in text
    # Each chart is an SVG with an accessible name, followed by its table.
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg"') >= 1
    assert re.search(r'<svg[^>]*role="img"[^>]*aria-labelledby="chart-trend-title chart-trend-desc"', html)
    trend_at = html.index("chart-trend-title")
    assert html.index("<caption>Part d'usagers satisfaits et note moyenne par période</caption>") > trend_at
    for heading in ("En bref", "Évolution", "Critères", "Publics", "Comparaison", "Sites", "Commentaires"):
        assert f">{heading}" in html, heading
    assert "style=" not in html  # no inline style: the page keeps its strict CSP


def test_a_comment_holding_markup_is_shown_as_text_newest_first_and_searchable(pool_with_answers):
    app = pool_with_answers
    older = datetime.combine(last_month_start(), datetime.min.time(), tzinfo=UTC) + timedelta(days=1)
    store(app, "piscine", 1, answers={"overall": "2", "comment": "Vestiaires sales"}, when=older)
    store(
        app,
        "piscine",
        1,
        answers={"overall": "5", "comment": '<script>alert("x")</script><b>top</b> =HYPERLINK("http://x")'},
        when=older + timedelta(days=5),
    )
    client = signed_in(app, "a@example.fr")
    html = client.get("/rapports/piscine").get_data(as_text=True)
    assert "<script>alert" not in html and "<b>top</b>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;b&gt;top&lt;/b&gt; =HYPERLINK" in html
    assert '<script>alert("x")</script><b>top</b> =HYPERLINK' in text_of(html)  # shown as text
    comments = html[html.index('id="h-comments"') :]
    assert comments.index("note globale 5/5") < comments.index("note globale 2/5")
    assert comments.index("HYPERLINK") < comments.index("Vestiaires sales")
    found = client.get("/rapports/piscine?q=vestiaires").get_data(as_text=True)
    assert "1 commentaire contient « vestiaires »." in text_of(found)
    assert "HYPERLINK" not in found[found.index('id="h-comments"') :]
    # A search for SQL's wildcards finds them as text, not everything.
    assert "0 commentaire contient « % »." in text_of(client.get("/rapports/piscine?q=%25").get_data(as_text=True))


def test_comments_are_paginated(pool_with_answers):
    store(pool_with_answers, "piscine", 45, answers={"overall": "4", "comment": "Bien"})
    client = signed_in(pool_with_answers, "a@example.fr")
    first = text_of(client.get("/rapports/piscine").get_data(as_text=True))
    assert "45 commentaires sur la période." in first and "Page 1 sur 3" in first
    last = client.get("/rapports/piscine?page=3").get_data(as_text=True)
    assert "Page 3 sur 3" in text_of(last)
    assert last[last.index('id="h-comments"') :].count("<blockquote>") == 5


def test_a_service_with_12_responses_shows_no_percentage_anywhere(surveys):
    add_accounts(surveys)
    store(surveys, "etat-civil", 12, answers={"overall": "4", "courtesy": "5", "comment": "Très bien"})
    client = signed_in(surveys, "b@example.fr")
    html = client.get("/rapports/etat-civil").get_data(as_text=True)
    text = text_of(html)
    # The only percentage is the confidence level the page explains.
    assert re.findall(r"\d+(?:[.,]\d+)?\s?%", text.replace("95 %", "")) == []
    assert "<svg" not in html
    assert "non publié : moins de 30 réponses" in text
    assert "12" in text  # the base is said, not hidden
    home = text_of(client.get("/rapports/").get_data(as_text=True))
    assert re.findall(r"\d+(?:[.,]\d+)?\s?%", home.replace("95 %", "")) == []
    assert "Trop peu de réponses sur la dernière période (moins de 30 réponses)" in home
    for table in EXPORTS:
        rows = list(csv.reader(io.StringIO(client.get(f"/rapports/etat-civil/tableaux/{table}.csv").data.decode())))
        for row in rows[1:]:
            assert not any(re.fullmatch(r"-?\d+,\d+", cell) for cell in row), (table, row)
        sheet = load_workbook(io.BytesIO(client.get(f"/rapports/etat-civil/tableaux/{table}.xlsx").data)).active
        assert not [c.value for row in sheet.iter_rows(min_row=2) for c in row if isinstance(c.value, float)], table
    assert client.get("/rapports/etat-civil/graphiques/trend.svg").status_code == 404


def test_exports_neutralise_formulas_and_keep_the_pages_numbers(pool_with_answers):
    client = signed_in(pool_with_answers, "a@example.fr")
    answer = client.get("/rapports/piscine/tableaux/tendance.csv")
    assert answer.mimetype == "text/csv"
    assert "attachment" in answer.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(answer.data.decode("utf-8-sig")), delimiter=";"))
    assert rows[0][:2] == ["Période", "Satisfaits (%)"]
    assert rows[-1][1] == "100,0" and rows[-1][4] == "40"
    english = client.get("/rapports/piscine/tableaux/tendance.csv?lang=en").data.decode("utf-8-sig")
    assert list(csv.reader(io.StringIO(english)))[-1][1] == "100.0"
    book = load_workbook(io.BytesIO(client.get("/rapports/piscine/tableaux/tendance.xlsx").data))
    assert book.active["B1"].value == "Satisfaits (%)" and book.active.cell(book.active.max_row, 2).value == 100.0

    from barometer.reports.exports import neutralise

    for text in ("=1+1", "+33 6", "-2", "@SUM(A1)", "\tx"):
        assert neutralise(text) == "'" + text
    assert neutralise("Accueil") == "Accueil" and neutralise(-2.5) == -2.5


def test_the_settings_form_refuses_bad_dates_in_plain_french(pool_with_answers):
    client = signed_in(pool_with_answers, "a@example.fr")
    answer = client.get("/rapports/piscine?grain=month&start=2025-13-01&end=2025-01-01")
    assert answer.status_code == 422
    text = text_of(answer.get_data(as_text=True))
    assert "Saisissez une date au format AAAA-MM-JJ, par exemple 2025-01-31." in text
    answer = client.get("/rapports/piscine?grain=week&start=2025-06-01&end=2025-01-01")
    text = text_of(answer.get_data(as_text=True))
    assert answer.status_code == 422
    assert "Choisissez le mois, le trimestre ou l'année." in text
    assert "La date de fin doit suivre la date de début." in text
    # The page still shows a report, on the default settings.
    assert "En bref" in text


def test_quarters_and_years_cut_the_same_responses(pool_with_answers):
    client = signed_in(pool_with_answers, "a@example.fr")
    start = (datetime.now(UTC) - timedelta(days=400)).date().isoformat()
    for grain, label in (("quarter", r"T[1-4] 20\d\d"), ("year", r"20\d\d")):
        text = text_of(client.get(f"/rapports/piscine?grain={grain}&start={start}").get_data(as_text=True))
        assert re.search(rf"En bref : {label}", text), grain


def test_the_report_reads_in_english(pool_with_answers):
    client = signed_in(pool_with_answers, "a@example.fr")
    html = client.get("/rapports/piscine?lang=en").get_data(as_text=True)
    assert '<html lang="en">' in html
    text = text_of(html)
    for words in ("At a glance", "Satisfied users", "Comparison", "Residents' comments"):
        assert words in text, words
    assert "Usagers satisfaits" not in text


def test_a_new_questionnaire_version_breaks_the_trend(pool_with_answers):
    """Responses to a second version of the pool's questionnaire: the page says where the
    series breaks, and each period names the version it was answered with."""
    from barometer.models import Questionnaire, QuestionnaireVersion

    app = pool_with_answers
    with app.app_context():
        questionnaire = db.session.execute(select(Questionnaire).where(Questionnaire.key == "piscine")).scalar_one()
        first = questionnaire.current
        second = QuestionnaireVersion(
            questionnaire_id=questionnaire.id, number=2, checksum="0" * 64, definition=first.definition
        )
        db.session.add(second)
        db.session.commit()
        second_id = second.id
    when = datetime.combine(last_month_start(), datetime.min.time(), tzinfo=UTC) + timedelta(days=10)
    base = valid_submission(app, "piscine", "", {"overall": "3"}, submitted_at=when)
    with app.app_context():
        store_responses([replace(base, token=new_token(), version_id=second_id) for _ in range(5)])
    start = (datetime.now(UTC) - timedelta(days=100)).date().replace(day=1).isoformat()
    html = signed_in(app, "a@example.fr").get(f"/rapports/piscine?start={start}").get_data(as_text=True)
    text = text_of(html)
    assert "Le questionnaire a changé de version en cours de période" in text
    trend = html[html.index('id="h-trend"') : html.index('id="h-attributes"')]
    versions = [
        v for _, v in re.findall(r'<tr><th scope="row">([^<]+)</th>.*?<td>([^<]*)</td></tr>', trend) if v != "–"
    ]
    assert versions[0] == "1" and versions[-1] == "1, 2"
    assert "Nouvelle version du questionnaire" in html  # marked on the chart


# ----------------------------------------------------------------------- demo data

START = None  # set by the fixture: the first month of the demo history


@pytest.fixture(scope="module")
def demo_app(_schema):
    """A demo history of 24 months (1,000 responses a month) and the four accounts."""
    app = _make_app(_schema)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["barometer", "demo", "--seed", "1", "--months", "24", "--per-month", "1000"])
    assert result.exit_code == 0, result.output
    add_accounts(app)
    yield app
    empty_tables(app)


def demo_range() -> str:
    today = datetime.now(UTC).date()
    end = today.replace(day=1) - timedelta(days=1)
    start = date(end.year - 2, end.month, 1) + timedelta(days=32)
    return f"start={start.replace(day=1).isoformat()}&end={end.isoformat()}"


def test_each_planted_effect_shows_on_its_service_page_and_exports(demo_app):
    client = signed_in(demo_app, "dgs@example.fr")
    pages = {}
    for effect in demo.PLANTED:
        pages[effect.service] = text_of(client.get(f"/rapports/{effect.service}?{demo_range()}").get_data(as_text=True))
    planted = {p.kind: p for p in demo.PLANTED}
    assert "Sur-qualité possible : L'accueil et la courtoisie" in pages[planted["over_quality"].service]
    assert "Besoins mal couverts : Le délai ou le temps d'attente" in pages[planted["under_served"].service]
    assert "Satisfaction en baisse régulière sur la période." in pages[planted["declining_trend"].service]
    assert "Publics moins satisfaits : 75 ans et plus (âge)" in pages[planted["less_satisfied_public"].service]

    def csv_rows(slug, table):
        data = client.get(f"/rapports/{slug}/tableaux/{table}.csv?{demo_range()}").data.decode("utf-8-sig")
        return list(csv.reader(io.StringIO(data), delimiter=";"))

    rows = {r[0]: r for r in csv_rows("etat-civil", "criteres")}
    assert rows["L'accueil et la courtoisie"][-1] == "Sur-qualité possible"
    rows = {r[0]: r for r in csv_rows("urbanisme", "criteres")}
    assert rows["Le délai ou le temps d'attente"][-1].startswith("Concentrer les efforts ici")
    rows = {r[1]: r for r in csv_rows("france-services", "publics")}
    assert rows["75 ans et plus"][-1] == "oui"


def test_no_control_service_shows_a_planted_kind_of_effect(demo_app):
    """Over every other service: no over-quality or under-served attribute, no declining
    trend, no less satisfied public."""
    with demo_app.test_request_context("/?lang=fr"):
        user = db.session.execute(select(User).where(User.email == "dgs@example.fr")).scalar_one()
        end = datetime.now(UTC).date().replace(day=1) - timedelta(days=1)
        start = (date(end.year - 2, end.month, 1) + timedelta(days=32)).replace(day=1)
        rows = report_services.home_rows(user, grain="month", start=start, end=end, lang="fr")
    flagged = {
        r.slug: [a.text for a in r.alerts if "Trop peu" not in a.text] + list(r.summary.over_quality)
        for r in rows
        if r.slug not in demo.PLANTED_SERVICES
    }
    assert len(flagged) >= 20
    assert {slug: found for slug, found in flagged.items() if found} == {}
    # The effects the home shows (the service-level ones are the director's, elsewhere).
    shown = {p.service for p in demo.PLANTED if not p.kind.endswith("_service")}
    planted = {r.slug: r for r in rows if r.slug in shown}
    assert set(planted) == shown
    assert all(planted[s].alerts or planted[s].summary.over_quality for s in shown)
    # The most urgent come first: every planted service is above every quiet one (a
    # control with too few responses last period is not quiet).
    order = [r.slug for r in rows]
    quiet = [r.slug for r in rows if r.slug not in demo.PLANTED_SERVICES and not r.alerts]
    assert quiet
    assert max(order.index(s) for s in shown if planted[s].alerts) < min(order.index(s) for s in quiet)


def test_the_home_lists_each_service_with_its_headline_and_alerts(demo_app):
    client = signed_in(demo_app, "a@example.fr")
    html = client.get(f"/rapports/?{demo_range()}").get_data(as_text=True)
    text = text_of(html)
    assert "Piscine municipale" in text and "État civil" not in text
    assert "Satisfaction en baisse régulière sur la période." in text
    assert re.search(r"Usagers satisfaits.*\d+ % IC 95 % \d+ %–\d+ %", text)


def test_a_number_that_could_not_be_computed_shows_as_a_dash_never_nan(app):
    from barometer.reports.views import report_helpers

    with app.test_request_context("/?lang=fr"):
        helpers = report_helpers()
        assert helpers["pts"](float("nan")) == "—"
        assert helpers["pct"](float("nan")) == "—"
        assert helpers["pct"](0.5) == "50\u202f%"
        assert helpers["pts"](-0.052) == "-5"
