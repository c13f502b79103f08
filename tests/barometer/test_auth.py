"""Staff sign-in, scopes on the reports page, sign-out."""

import os
import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from babel.dates import format_date
from flask_login import login_required
from flask_login.utils import encode_cookie
from markupsafe import escape
from sqlalchemy import select

from barometer import models
from barometer.auth import services as auth_services
from barometer.extensions import db
from barometer.models import Organisation, Role, Service, User
from barometer.respond.services import new_token
from barometer.storage import store_responses
from tests.helpers import open_form, valid_submission

PASSWORD = "correct horse battery"


@pytest.fixture
def accounts(surveys):
    with surveys.app_context():
        org = db.session.execute(select(Organisation)).scalar_one()
        piscine = db.session.execute(select(Service).where(Service.slug == "piscine")).scalar_one()
        for email, role in (("dgs@example.fr", Role.director), ("piscine@example.fr", Role.manager)):
            user = User(email=email, role=role, organisation_id=org.id)
            user.set_password(PASSWORD)
            if role == Role.manager:
                user.services = [piscine]
            db.session.add(user)
        db.session.commit()
    return surveys


def csrf(client, url="/connexion"):
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', client.get(url).get_data(as_text=True)).group(
        1
    )


def login(client, email, password=PASSWORD, next_url=None):
    url = "/connexion" + (f"?next={next_url}" if next_url else "")
    return client.post(url, data={"email": email, "password": password, "csrf_token": csrf(client)})


def test_reports_need_a_login(accounts):
    page = accounts.test_client().get("/rapports/")
    assert page.status_code == 302 and page.location.startswith("/connexion")


def test_wrong_password_is_refused_with_a_message(accounts):
    client = accounts.test_client()
    page = login(client, "dgs@example.fr", "wrong password")
    html = page.get_data(as_text=True)
    assert page.status_code == 422
    assert "Adresse e-mail ou mot de passe incorrect." in html
    assert 'role="alert"' in html
    # The field in error says so, and points to its message; the others carry neither.
    assert re.search(r'<input aria-describedby="password-error" aria-invalid="true"[^>]* id="password"', html)
    assert re.search(r'<input autocomplete="username" id="email"', html)
    assert client.get("/rapports/").status_code == 302


def test_director_sees_every_service_and_manager_only_theirs(accounts):
    director = accounts.test_client()
    assert login(director, "DGS@example.fr").status_code == 302
    html = director.get("/rapports/").get_data(as_text=True)
    assert "Piscine municipale" in html and "Médiathèque" in html
    manager = accounts.test_client()
    login(manager, "piscine@example.fr")
    html = manager.get("/rapports/").get_data(as_text=True)
    assert "Piscine municipale" in html and "Médiathèque" not in html


def test_next_is_followed_only_within_the_site(accounts):
    client = accounts.test_client()
    assert login(client, "dgs@example.fr", next_url="/rapports/?tri=nom").location == "/rapports/?tri=nom"


def test_logout_is_a_post_with_csrf(accounts):
    client = accounts.test_client()
    login(client, "dgs@example.fr")
    assert client.get("/deconnexion").status_code == 405
    assert client.post("/deconnexion").status_code == 400  # no CSRF token
    token = csrf(client, "/rapports/")
    assert client.post("/deconnexion", data={"csrf_token": token}).status_code == 302
    assert client.get("/rapports/").status_code == 302


def test_a_session_cookie_is_read_only_when_its_signature_holds(accounts):
    client = accounts.test_client()
    login(client, "dgs@example.fr")
    page = client.get("/rapports/")
    assert page.status_code == 200
    # A page that depends on the session says so to caches.
    assert "Cookie" in {v.strip() for v in page.headers["Vary"].split(",")}
    signed = client.get_cookie("session").value
    middle = len(signed) // 2  # a character of the signed data, not of base64 padding
    client.set_cookie("session", signed[:middle] + ("B" if signed[middle] == "A" else "A") + signed[middle + 1 :])
    assert client.get("/rapports/").status_code == 302  # a tampered cookie signs nobody in


def test_a_stale_sign_in_form_comes_back_with_the_address_kept(accounts):
    client = accounts.test_client()
    csrf(client)  # the form was shown; its token then went stale
    page = client.post("/connexion", data={"email": "dgs@example.fr", "password": PASSWORD, "csrf_token": "stale"})
    html = page.get_data(as_text=True)
    assert page.status_code == 400
    assert "Le formulaire a expiré : envoyez-le à nouveau." in html and 'role="alert"' in html
    assert 'value="dgs@example.fr"' in html and PASSWORD not in html
    assert client.get("/rapports/").status_code == 302  # nobody signed in
    fresh = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    again = client.post("/connexion", data={"email": "dgs@example.fr", "password": PASSWORD, "csrf_token": fresh})
    assert again.status_code == 302 and client.get("/rapports/").status_code == 200


def test_a_stale_sign_out_form_is_refused_and_keeps_the_session(accounts):
    client = accounts.test_client()
    login(client, "dgs@example.fr")
    page = client.post("/deconnexion", data={"csrf_token": "stale"})
    assert page.status_code == 400 and "Requête invalide" in page.get_data(as_text=True)
    assert client.get("/rapports/").status_code == 200


@pytest.mark.parametrize("email", ["dgs@example.fr", "nobody@example.fr", "inactive@example.fr"])
def test_every_refused_sign_in_checks_a_password(accounts, monkeypatch, email):
    """The delay of a refusal must not tell which addresses have an (active) account."""
    with accounts.app_context():
        user = User(email="inactive@example.fr", role=Role.director, active=False)
        user.set_password(PASSWORD)
        db.session.add(user)
        db.session.commit()
    checked = []
    real = auth_services.check_password_hash
    for module in (auth_services, models):  # unknown addresses, then known ones
        monkeypatch.setattr(module, "check_password_hash", lambda h, p: checked.append(h) or real(h, p))
    with accounts.app_context():
        assert auth_services.authenticate(email, "wrong password") is None
    assert len(checked) == 1 and checked[0].startswith("scrypt:")


def test_inactive_accounts_cannot_sign_in(accounts):
    with accounts.app_context():
        user = db.session.execute(select(User).where(User.email == "dgs@example.fr")).scalar_one()
        user.active = False
        db.session.commit()
    assert login(accounts.test_client(), "dgs@example.fr").status_code == 422


def test_create_user_command(accounts):
    runner = accounts.test_cli_runner()
    result = runner.invoke(
        args=["barometer", "create-user", "new@example.fr", "--role", "admin", "--password", "short"]
    )
    assert result.exit_code == 1 and "au moins 10 caractères" in result.output
    result = runner.invoke(
        args=["barometer", "create-user", "New@Example.fr", "--role", "admin", "--password", PASSWORD]
    )
    assert result.exit_code == 0
    assert login(accounts.test_client(), "new@example.fr").status_code == 302


def test_create_user_changes_a_password_without_touching_role_or_scope(accounts):
    runner = accounts.test_cli_runner()
    result = runner.invoke(args=["barometer", "create-user", "DGS@example.fr", "--password", "another long password"])
    assert result.exit_code == 0 and "(director)" in result.output
    with accounts.app_context():
        users = db.session.execute(select(User).where(User.email == "dgs@example.fr")).scalars().all()
        assert len(users) == 1 and users[0].role == Role.director and users[0].organisation_id is not None


def test_create_user_gives_a_manager_their_services(accounts):
    runner = accounts.test_cli_runner()
    args = [
        "barometer",
        "create-user",
        "m@example.fr",
        "--service",
        "creche",
        "--service",
        "musee",
        "--password",
        PASSWORD,
    ]
    assert runner.invoke(args=args).exit_code == 0
    client = accounts.test_client()
    login(client, "m@example.fr")
    html = client.get("/rapports/").get_data(as_text=True)
    assert "Crèches municipales" in html and "Musée municipal" in html and "Piscine municipale" not in html
    bad = runner.invoke(args=["barometer", "create-user", "m@example.fr", "--service", "nope", "--password", PASSWORD])
    assert bad.exit_code == 1 and "service inconnu : nope" in bad.output


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "javascript:alert(1)",
        "/rapports/\r\nSet-Cookie: session=forged",
        "/rapports/\nLocation: https://evil.example/",
        "/\t/evil.example",
        "/\r/evil.example",
        "/rapports/\x00",
        "/rapports/\x1b[31m",
        "/rapports/\u2028",
        "/\u202e/rapports",
        "\\\\evil.example",
        "https:/evil.example",
        " //evil.example",
        "",
    ],
)
def test_next_never_leaves_the_site(accounts, target):
    client = accounts.test_client()
    page = client.post(
        "/connexion",
        query_string={"next": target},
        data={"email": "dgs@example.fr", "password": PASSWORD, "csrf_token": csrf(client)},
    )
    assert page.status_code == 302 and page.location == "/rapports/"
    assert client.get("/rapports/").status_code == 200  # signed in all the same


def test_password_guessing_is_rate_limited_with_a_delay_to_wait(accounts):
    client = accounts.test_client()
    statuses = [login(client, "dgs@example.fr", f"guess {i}").status_code for i in range(11)]
    assert statuses == [422] * 10 + [429]
    refused = login(client, "dgs@example.fr")
    assert refused.status_code == 429
    assert "Trop de demandes ont été envoyées depuis cette connexion" in refused.get_data(as_text=True)
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # Even the right password waits: the limit is per address, not per guess.
    assert client.get("/rapports/").status_code == 302


def from_address(app, address):
    """A browser on another client address."""
    browser = app.test_client()
    browser.environ_base["REMOTE_ADDR"] = address
    return browser


def test_password_guessing_on_one_account_is_limited_whatever_the_address(accounts):
    attempts = [(from_address(accounts, f"198.51.100.{i // 8}"), f"guess {i}") for i in range(20)]
    assert [login(browser, " DGS@example.fr", guess).status_code for browser, guess in attempts] == [422] * 20
    fresh = from_address(accounts, "203.0.113.50")
    refused = login(fresh, "dgs@example.fr")  # the right password, from an address never seen
    html = refused.get_data(as_text=True)
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 3600
    assert "Trop de tentatives de connexion sur ce compte en une heure : réessayez plus tard." in html
    assert 'value="dgs@example.fr"' in html and fresh.get("/rapports/").status_code == 302
    # Another account, from the same address, signs in.
    assert login(fresh, "piscine@example.fr").status_code == 302


def test_the_account_limit_is_said_in_english_too(accounts):
    for i in range(20):
        login(from_address(accounts, f"198.51.100.{i}"), "dgs@example.fr", "guess")
    client = from_address(accounts, "203.0.113.50")
    page = client.post(
        "/connexion?lang=en", data={"email": "dgs@example.fr", "password": PASSWORD, "csrf_token": csrf(client)}
    )
    assert page.status_code == 429
    assert "Too many sign-in attempts on this account within an hour: try again later." in page.get_data(as_text=True)


def redis_or_skip(url):
    """A client of the test Redis; the test fails instead of skipping when REDIS=required."""
    import redis

    try:
        server = redis.Redis.from_url(url, socket_connect_timeout=0.5)
        server.ping()
    except redis.exceptions.ConnectionError:
        reason = f"no Redis at {url} to share the limits"
        if os.environ.get("REDIS") == "required":
            pytest.fail(reason + " (REDIS=required)", pytrace=False)
        pytest.skip(reason)
    return server


def test_two_workers_share_the_sign_in_limits_through_redis(accounts, app_factory):
    url = "redis://127.0.0.1:6379/15"
    server = redis_or_skip(url)
    prefix = f"test-sign-in-{uuid.uuid4().hex}"  # other tests may use the same database
    settings = {"RATELIMIT_STORAGE_URI": url, "RATELIMIT_KEY_PREFIX": prefix}
    try:
        workers = [app_factory(**settings) for _ in range(2)]
        # One address, alternately on each worker: its 10 a minute are counted once.
        same_address = [from_address(workers[i % 2], "198.51.100.1") for i in range(11)]
        statuses = [login(browser, "piscine@example.fr", "guess").status_code for browser in same_address]
        assert statuses == [422] * 10 + [429]
        # One account from many addresses, alternately on each worker: 20 an hour in all.
        statuses = [
            login(from_address(workers[i % 2], f"203.0.113.{i}"), "dgs@example.fr", "guess").status_code
            for i in range(21)
        ]
        assert statuses == [422] * 20 + [429]
        keys = [key.decode() for key in server.scan_iter(f"*{prefix}*")]
        assert keys and not [key for key in keys if "example.fr" in key]
        with accounts.app_context():
            expected = auth_services.account_key("dgs@example.fr", accounts.config["SECRET_KEY"])
        (counter,) = [key for key in keys if expected in key]
        assert int(server.get(counter)) >= 20  # both workers counted into it
    finally:
        for key in server.scan_iter(f"*{prefix}*"):
            server.delete(key)


@pytest.mark.parametrize(("language", "count"), [("fr", "1\u202f001"), ("en", "1,001")])
def test_counts_and_dates_follow_the_reader_language(accounts, language, count):
    resident = accounts.test_client()
    _, tokens = open_form(resident)
    assert resident.post("/s/piscine", data={"overall": "4", **tokens}).status_code == 200
    earlier = valid_submission(accounts, "piscine", "", {"overall": "3"}, submitted_at=datetime(2025, 3, 1, tzinfo=UTC))
    with accounts.app_context():
        store_responses([replace(earlier, token=new_token()) for _ in range(1000)])
    client = accounts.test_client()
    login(client, "piscine@example.fr")
    html = client.get("/rapports/", headers={"Accept-Language": language}).get_data(as_text=True)
    row = html[html.index('<th scope="row">Piscine municipale</th>') :]
    # The responses, the last one's date, then the policy, before the links.
    row = re.search(r"<td>([^<]*)</td><td>([^<]*)</td><td>[^<]*</td>\s*<td><a ", row[: row.index("</tr>")])
    # "1 001" and "27 nov. 2026" in French, "1,001" and "Nov 27, 2026" in English.
    assert row.groups() == (count, format_date(datetime.now(UTC), "medium", locale=language))


def copy_of_session(app, client):
    """A second browser holding a copy of this client's session cookie."""
    copy = app.test_client()
    copy.set_cookie("session", client.get_cookie("session").value)
    return copy


def test_signing_out_ends_every_session_of_the_account(accounts):
    client = accounts.test_client()
    login(client, "dgs@example.fr")
    copied, other_browser = copy_of_session(accounts, client), accounts.test_client()
    login(other_browser, "dgs@example.fr")
    assert copied.get("/rapports/").status_code == 200 and other_browser.get("/rapports/").status_code == 200
    assert client.post("/deconnexion", data={"csrf_token": csrf(client, "/rapports/")}).status_code == 302
    for browser in (client, copied, other_browser):
        assert browser.get("/rapports/").status_code == 302
    # Signing in again opens a new session; the copied cookie stays dead.
    assert login(client, "dgs@example.fr").status_code == 302
    assert client.get("/rapports/").status_code == 200 and copied.get("/rapports/").status_code == 302


def test_a_password_change_ends_every_session_of_the_account(accounts):
    client = accounts.test_client()
    login(client, "dgs@example.fr")
    copied = copy_of_session(accounts, client)
    assert copied.get("/rapports/").status_code == 200
    runner = accounts.test_cli_runner()
    result = runner.invoke(args=["barometer", "create-user", "dgs@example.fr", "--password", "another long password"])
    assert result.exit_code == 0
    assert client.get("/rapports/").status_code == 302 and copied.get("/rapports/").status_code == 302
    assert login(client, "dgs@example.fr", "another long password").status_code == 302


def test_deactivation_ends_every_session_of_the_account(accounts):
    client = accounts.test_client()
    login(client, "piscine@example.fr")
    copied = copy_of_session(accounts, client)
    assert copied.get("/rapports/").status_code == 200
    with accounts.app_context():
        user = db.session.execute(select(User).where(User.email == "piscine@example.fr")).scalar_one()
        user.active = False
        db.session.commit()
    assert client.get("/rapports/").status_code == 302 and copied.get("/rapports/").status_code == 302
    with accounts.app_context():  # reactivated, the account needs a new sign-in
        db.session.execute(select(User).where(User.email == "piscine@example.fr")).scalar_one().active = True
        db.session.commit()
    assert copied.get("/rapports/").status_code == 302


def test_a_remember_cookie_ends_with_the_sessions(accounts):
    """Flask-Login's remember cookie carries the same identity as the session."""
    with accounts.app_context():
        user = db.session.execute(select(User).where(User.email == "dgs@example.fr")).scalar_one()
        remembered = encode_cookie(user.get_id())

    def with_remember_cookie():
        browser = accounts.test_client()
        browser.set_cookie("remember_token", remembered)
        return browser

    assert with_remember_cookie().get("/rapports/").status_code == 200
    with accounts.app_context():
        db.session.execute(select(User).where(User.email == "dgs@example.fr")).scalar_one().end_sessions()
        db.session.commit()
    assert with_remember_cookie().get("/rapports/").status_code == 302


@pytest.mark.parametrize("shape", ["{id}", "{id}:", ":{version}", "x:{version}", "{id}:{version}:1", ""])
def test_a_session_identity_without_its_version_names_no_one(accounts, shape):
    with accounts.app_context():
        user = db.session.execute(select(User).where(User.email == "dgs@example.fr")).scalar_one()
        assert auth_services.load_user(shape.format(id=user.id, version=user.session_version)) is None
        assert auth_services.load_user(user.get_id()) == user


def test_staff_pages_are_never_stored_by_a_cache(accounts):
    client = accounts.test_client()
    assert client.get("/connexion").headers["Cache-Control"] == "no-store"
    refused = login(client, "dgs@example.fr", "wrong password")
    assert refused.status_code == 422 and refused.headers["Cache-Control"] == "no-store"
    assert client.get("/rapports/").headers["Cache-Control"] == "no-store"  # the redirect to sign in
    signed_in = login(client, "dgs@example.fr")
    assert signed_in.status_code == 302 and signed_in.headers["Cache-Control"] == "no-store"
    page = client.get("/rapports/")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert client.get("/rapports/nothing-here").headers["Cache-Control"] == "no-store"  # a staff 404


def test_any_page_behind_a_sign_in_is_never_stored_by_a_cache(accounts):
    accounts.add_url_rule("/elsewhere", "elsewhere", login_required(lambda: "a staff page"))
    client = accounts.test_client()
    login(client, "dgs@example.fr")
    page = client.get("/elsewhere")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"


def test_resident_pages_keep_their_own_cache_headers(accounts):
    staff = accounts.test_client()
    login(staff, "dgs@example.fr")
    for client in (accounts.test_client(), staff):
        assert client.get("/s/piscine/qr.svg").headers["Cache-Control"] == "max-age=3600"


@pytest.mark.parametrize(
    ("email", "password", "field", "french", "english"),
    [
        ("", PASSWORD, "email", "Indiquez votre adresse e-mail.", "Enter your e-mail address."),
        ("dgs@example.fr", "", "password", "Indiquez votre mot de passe.", "Enter your password."),
        (
            "a" * 290 + "@example.fr",
            PASSWORD,
            "email",
            "Une adresse e-mail ne dépasse pas 254 caractères.",
            "An e-mail address is at most 254 characters long.",
        ),
        (
            "dgs.example.fr",
            PASSWORD,
            "email",
            "Indiquez une adresse e-mail complète, par exemple nom@ma-commune.fr.",
            "Enter a complete e-mail address, for example name@example.fr.",
        ),
        (
            "dgs@example.fr",
            "x" * 201,
            "password",
            "Un mot de passe ne dépasse pas 200 caractères.",
            "A password is at most 200 characters long.",
        ),
    ],
)
def test_every_sign_in_message_is_in_the_reader_language(accounts, email, password, field, french, english):
    for query, message in (("", french), ("?lang=en", english)):
        client = accounts.test_client()
        page = client.post(
            "/connexion" + query, data={"email": email, "password": password, "csrf_token": csrf(client)}
        )
        html = page.get_data(as_text=True)
        assert page.status_code == 422
        assert re.search(rf'<p class="error" id="{field}-error">{re.escape(escape(message))}</p>', html)
        assert not [default for default in ("Field ", "This field", "Invalid input") if default in html]
