"""The submission's fast path: a good submission gets exactly what the view would give,
everything else goes on to the view, and nothing is stored or counted twice."""

from dataclasses import replace

import pytest
from flask import request_started
from sqlalchemy import select
from werkzeug.test import EnvironBuilder

from barometer.extensions import db, limiter
from barometer.models import Response
from barometer.respond import fastpath, services
from tests.helpers import VALID, checked, count_rows, open_form

SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


@pytest.fixture
def cached(surveys, app_factory):
    """The app as served: each worker keeps the surveys it has read for a while."""
    return app_factory(SURVEY_CACHE_SECONDS=30)


class FlaskRequests:
    """Counts the requests that reach Flask's request machinery."""

    def __init__(self, app):
        self.count = 0
        request_started.connect(self._seen, app)

    def _seen(self, sender, **extra):
        self.count += 1


def post(client, url: str, data: dict, **headers):
    """A fresh form of `url`'s survey, sent back with `data`."""
    _, tokens = open_form(client, url, **headers)
    return client.post(url, data={**data, **tokens}, headers=headers), tokens["token"]


def stored(app, token_of_form: str) -> tuple:
    """What was stored of the response a form's token names: its columns and answers."""
    with app.app_context():
        response_token = services.token_of(token_of_form).response
        response = db.session.execute(select(Response).where(Response.token == response_token)).scalar_one()
        answers = sorted((a.question_key, a.value, a.choice, a.text) for a in response.answers)
        return (
            response.service_id,
            response.site_id,
            response.version_id,
            response.channel,
            response.submitted_at,
            (response.age_band, response.sex, response.area, response.frequency),
            answers,
        )


@pytest.mark.parametrize(
    ("url", "data", "headers"),
    [
        ("/s/piscine/bassin-nord?c=qr", {**VALID, "channel": "qr"}, {}),
        ("/s/piscine", {"overall": "5"}, {}),
        ("/s/mediatheque?lang=en", {"overall": "3", "comment": "Thanks"}, {}),
        ("/s/etat-civil", {"overall": "2"}, {"Accept-Language": "en-GB,en;q=0.8"}),
    ],
    ids=["site-qr-every-answer", "overall-only", "english-by-address", "english-by-browser"],
)
def test_a_good_submission_gets_what_the_view_gives_and_is_stored_alike(cached, url, data, headers):
    client = cached.test_client()
    flask = FlaskRequests(cached)
    # Without Sec-Fetch-Site (an older browser), the view takes it, and renders its
    # thank-you page; the same submission with it is then taken before Flask.
    by_view, view_token = post(client, url, data, **headers)
    seen = flask.count
    fast, fast_token = post(client, url, data, **SAME_ORIGIN, **headers)
    assert flask.count == seen + 1  # the form's page only
    assert by_view.status_code == fast.status_code == 200
    assert fast.headers.to_wsgi_list() == by_view.headers.to_wsgi_list()
    assert fast.get_data() == by_view.get_data()
    assert count_rows(cached) == 2
    assert stored(cached, fast_token) == stored(cached, view_token)


def test_a_double_tap_on_the_fast_path_stores_one_response(cached):
    client = cached.test_client()
    post(client, "/s/piscine", {"overall": "4"})  # the thank-you page rendered
    _, tokens = open_form(client)
    flask = FlaskRequests(cached)
    replies = [client.post("/s/piscine", data={"overall": "5", **tokens}, headers=SAME_ORIGIN) for _ in range(3)]
    assert [r.status_code for r in replies] == [200, 200, 200] and flask.count == 0
    assert replies[0].get_data() == replies[2].get_data()
    assert count_rows(cached) == 2


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("an answer out of range", 422),
        ("the honeypot filled", 400),
        ("a forged token", 400),
        ("another service's token", 400),
        ("sent from another site", 400),
        ("with a cookie", 200),
        ("multipart", 200),
        ("too large", 413),
        ("an expired form", 400),
        ("a trailing slash", 404),
        ("empty", 400),
        ("an unknown service", 404),
        ("an unknown site", 404),
        ("a survey not cached", 200),
        ("a language not rendered yet", 200),
    ],
)
def test_what_is_not_plainly_good_goes_on_to_the_view(cached, case, status):
    client = cached.test_client()
    post(client, "/s/piscine", {"overall": "4"})  # cached, its French thank-you page rendered
    _, tokens = open_form(client)
    url, data, headers, kwargs = "/s/piscine", {"overall": "4", **tokens}, dict(SAME_ORIGIN), {}
    if case == "an answer out of range":
        data["overall"] = "9"
    elif case == "the honeypot filled":
        data["website"] = "http://spam.example"
    elif case == "a forged token":
        data["token"] = tokens["token"][:-2] + "xx"
    elif case == "another service's token":
        url = "/s/etat-civil"
        post(client, url, {"overall": "4"})
    elif case == "sent from another site":
        headers["Sec-Fetch-Site"] = "cross-site"
    elif case == "with a cookie":
        client.set_cookie("autre", "valeur")
    elif case == "multipart":
        kwargs["content_type"] = "multipart/form-data"
    elif case == "too large":
        data["bourrage"] = "x" * cached.config["MAX_CONTENT_LENGTH"]  # an unknown field: only its size refuses it
    elif case == "an expired form":
        cached.config["SURVEY_TOKEN_MAX_AGE"] = -1
    elif case == "a trailing slash":
        url = "/s/piscine/"
    elif case == "empty":
        data = {}
    elif case == "an unknown service":
        url = "/s/inconnu"
    elif case == "an unknown site":
        url = "/s/piscine/inconnu"
    elif case == "a survey not cached":
        services.clear_cache()
    elif case == "a language not rendered yet":
        url = "/s/piscine?lang=en"
    before = count_rows(cached)
    flask = FlaskRequests(cached)
    reply = client.post(url, data=data, headers=headers, **kwargs)
    assert flask.count == 1
    assert reply.status_code == status
    assert count_rows(cached) == before + (1 if status == 200 else 0)


def test_a_survey_closed_while_cached_is_left_to_the_view(cached, monkeypatch):
    client = cached.test_client()
    post(client, "/s/piscine", {"overall": "4"})
    _, tokens = open_form(client)
    read_at, context = services._cache[("piscine", None)]
    closed = replace(context, is_open=False, pages=context.pages)  # its pages rendered
    monkeypatch.setitem(services._cache, ("piscine", None), (read_at, closed))
    flask = FlaskRequests(cached)
    reply = client.post("/s/piscine", data={"overall": "4", **tokens}, headers=SAME_ORIGIN)
    assert flask.count == 1 and reply.status_code == 410
    assert count_rows(cached) == 1


def test_a_stale_cache_is_left_to_the_view_which_reads_the_survey_again(cached, monkeypatch):
    client = cached.test_client()
    post(client, "/s/piscine", {"overall": "4"})
    _, tokens = open_form(client)
    read_at, context = services._cache[("piscine", None)]
    monkeypatch.setitem(services._cache, ("piscine", None), (read_at - 31, context))
    with cached.app_context():
        assert services.cached_survey("piscine") is None
    flask = FlaskRequests(cached)
    reply = client.post("/s/piscine", data={"overall": "4", **tokens}, headers=SAME_ORIGIN)
    assert flask.count == 1 and reply.status_code == 200
    assert count_rows(cached) == 2
    assert services._cache[("piscine", None)][0] > read_at  # read again by the view


def submission_count(app, address: str = "127.0.0.1") -> int:
    """The submissions the limiter has counted for an address, in its first limit's window."""
    with app.app_context():
        item = services._parsed_limits(app.config["SURVEY_RATE_LIMIT"])[0]  # the shortest window
        return limiter.limiter.storage.get(item.key_for(services.SUBMISSION_SCOPE, address))


def test_the_limit_is_counted_once_and_its_page_shown_by_the_view(surveys, app_factory):
    app = app_factory(SURVEY_CACHE_SECONDS=30, SURVEY_RATE_LIMIT="3 per minute")
    client = app.test_client()
    flask = FlaskRequests(app)
    post(client, "/s/piscine", {"overall": "4"})  # by the view: the page rendered
    replies = [post(client, "/s/piscine", {"overall": "4", "courtesy": "2"}, **SAME_ORIGIN)[0] for _ in range(3)]
    assert [r.status_code for r in replies] == [200, 200, 429]
    assert flask.count == 2 + 3 + 1  # the first submission, the forms, the limit's page
    html = replies[-1].get_data(as_text=True)
    assert "Trop de réponses ont été envoyées depuis cette connexion en peu de temps." in html
    assert checked(html, "overall", "4") and checked(html, "courtesy", "2")
    assert 1 <= int(replies[-1].headers["Retry-After"]) <= 60
    assert count_rows(app) == 3
    assert submission_count(app) == 4  # each submission once, the refused one included


def test_a_response_the_fast_path_could_not_keep_gets_the_error_page_without_a_second_try(cached, monkeypatch):
    client = cached.test_client()
    post(client, "/s/piscine", {"overall": "4"})
    calls = []

    def failing(submission):
        calls.append(submission.token)
        raise OSError("base injoignable")

    monkeypatch.setattr(fastpath, "keep_response", failing)
    monkeypatch.setattr(services, "keep_response", failing)  # the view's, should it try again
    flask = FlaskRequests(cached)
    reply, _ = post(client, "/s/piscine", {"overall": "5"}, **SAME_ORIGIN)
    assert reply.status_code == 500 and "Une erreur" in reply.get_data(as_text=True)
    assert len(calls) == 1 and flask.count == 2  # the form, then the view's error page
    assert count_rows(cached) == 1
    assert submission_count(cached) == 2


def test_behind_a_proxy_each_resident_is_counted_under_their_own_address(surveys, app_factory):
    app = app_factory(SURVEY_CACHE_SECONDS=30, SURVEY_RATE_LIMIT="1 per minute", PROXY_COUNT=1)
    client = app.test_client()
    post(client, "/s/piscine", {"overall": "4"}, **{"X-Forwarded-For": "203.0.113.1"})
    flask = FlaskRequests(app)
    replies = [
        post(client, "/s/piscine", {"overall": "4"}, **SAME_ORIGIN, **{"X-Forwarded-For": address})[0]
        for address in ("203.0.113.2", "203.0.113.3", "203.0.113.2")
    ]
    assert [r.status_code for r in replies] == [200, 200, 429]
    assert flask.count == 3 + 1  # the forms, and the limit's page
    assert [submission_count(app, a) for a in ("203.0.113.1", "203.0.113.2", "203.0.113.3")] == [1, 2, 1]
    assert submission_count(app, "127.0.0.1") == 0  # the proxy's own address counts nobody


def test_with_trusted_hosts_set_every_submission_goes_through_flask_which_checks_them(surveys, app_factory):
    app = app_factory(SURVEY_CACHE_SECONDS=30, TRUSTED_HOSTS=["avis.example"])
    client = app.test_client()
    host = {"Host": "avis.example"}
    post(client, "/s/piscine", {"overall": "4"}, **host)
    _, tokens = open_form(client, "/s/piscine", **host)
    flask = FlaskRequests(app)
    reply = client.post("/s/piscine", data={"overall": "4", **tokens}, headers={**SAME_ORIGIN, **host})
    assert reply.status_code == 200 and flask.count == 1
    assert count_rows(app) == 2


def test_the_fast_path_journals_a_response_the_flush_then_stores(surveys, app_factory, tmp_path):
    app = app_factory(SURVEY_CACHE_SECONDS=30, RESPONSE_FLUSH_SECONDS=3600, RESPONSE_JOURNAL_DIR=str(tmp_path))
    journal = app.extensions["response_journal"]
    try:
        client = app.test_client()
        post(client, "/s/piscine", {"overall": "4"})
        flask = FlaskRequests(app)
        reply, _ = post(client, "/s/piscine", VALID, **SAME_ORIGIN)
        assert reply.status_code == 200 and flask.count == 1  # the form only
        (file,) = tmp_path.glob("*.jsonl")
        lines = file.read_text(encoding="utf-8").splitlines()
        assert len(lines) == 2 and "marie.curie" not in lines[1]  # the comment masked before it is written
        assert count_rows(app) == 0
        assert journal.flush() == 2
        assert count_rows(app) == 2
    finally:
        journal.close()


@pytest.mark.parametrize(
    "headers",
    [{"Sec-Fetch-Site": "none"}, {**SAME_ORIGIN, "Content-Type": "Application/X-WWW-Form-Urlencoded; charset=UTF-8"}],
    ids=["typed-address", "content-type-with-charset"],
)
def test_other_forms_of_a_good_submission_take_the_fast_path(cached, headers):
    client = cached.test_client()
    post(client, "/s/piscine", {"overall": "4"})
    _, tokens = open_form(client)
    flask = FlaskRequests(cached)
    body = f"overall=5&token={tokens['token']}"
    reply = client.post(
        "/s/piscine", data=body, headers={"Content-Type": "application/x-www-form-urlencoded", **headers}
    )
    assert reply.status_code == 200 and flask.count == 0
    assert count_rows(cached) == 2


def test_with_limiting_off_good_submissions_take_the_fast_path_unlimited(surveys, app_factory):
    app = app_factory(SURVEY_CACHE_SECONDS=30, SURVEY_RATE_LIMIT="1 per minute", RATELIMIT_ENABLED=False)
    client = app.test_client()
    post(client, "/s/piscine", {"overall": "4"})
    flask = FlaskRequests(app)
    replies = [post(client, "/s/piscine", {"overall": "4"}, **SAME_ORIGIN)[0] for _ in range(3)]
    assert [r.status_code for r in replies] == [200, 200, 200] and flask.count == 3  # the forms only
    assert count_rows(app) == 4


def test_a_chunked_body_goes_on_to_the_view(cached):
    """Its Content-Length, if any, is not the body's: the view reads it to its end."""
    client = cached.test_client()
    post(client, "/s/piscine", {"overall": "4"})
    _, tokens = open_form(client)
    body = f"overall=4&token={tokens['token']}&website=http://spam.example".encode()
    environ = EnvironBuilder(
        path="/s/piscine",
        method="POST",
        data=body,
        content_type="application/x-www-form-urlencoded",
        headers={**SAME_ORIGIN, "Transfer-Encoding": "chunked"},
    ).get_environ()
    environ["CONTENT_LENGTH"] = str(body.index(b"&website"))  # a length that ends before the honeypot
    environ["wsgi.input_terminated"] = True
    flask = FlaskRequests(cached)
    statuses = []
    b"".join(cached(environ, lambda status, headers, exc_info=None: statuses.append(status)))
    assert flask.count == 1 and statuses == ["400 BAD REQUEST"]
    assert count_rows(cached) == 1
