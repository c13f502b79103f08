"""Baromètre: a satisfaction barometer for local public services."""

from functools import lru_cache, partial
from pathlib import Path
from urllib.parse import parse_qsl

from babel import Locale
from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header
from werkzeug.middleware.proxy_fix import ProxyFix

from .config import Config

ROOT = Path(__file__).resolve().parent.parent


class ConfigurationError(RuntimeError):
    """A setting the app cannot start with; the message says what to do, in French."""


def create_app(config: type | dict | None = None) -> Flask:
    """Build the application; tests pass their own config class or mapping."""
    app = Flask(__name__, template_folder=str(ROOT / "templates"), instance_path=str(ROOT / "instance"))
    app.config.from_object(Config)
    if isinstance(config, dict):
        app.config.update(config)
    elif config is not None:
        app.config.from_object(config)
    # Staff forms are dated by their CSRF token, the survey by its own signed token.
    app.config["WTF_CSRF_TIME_LIMIT"] = app.config["SURVEY_TOKEN_MAX_AGE"]
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_pre_ping": True, **app.config["SQLALCHEMY_ENGINE_OPTIONS"]}
    if not app.config.get("SECRET_KEY"):
        raise ConfigurationError(
            "SECRET_KEY n'est pas défini : exportez SECRET_KEY (une longue valeur aléatoire) "
            "ou lancez `make run`, qui en crée une dans instance/secret_key."
        )
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    register_security_headers(app)
    register_middleware(app)
    return app


def register_middleware(app: Flask) -> None:
    """What a request meets before Flask: the proxies' headers, then the survey's
    submissions (`respond.fastpath`); from the outside in."""
    from .respond.fastpath import SubmissionFastPath

    # Flask checks TRUSTED_HOSTS on the way in; the fast path would not.
    if not app.config.get("TRUSTED_HOSTS"):
        app.wsgi_app = SubmissionFastPath(app, app.wsgi_app)
    if app.config["PROXY_COUNT"]:
        n = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)


def register_extensions(app: Flask) -> None:
    from . import models  # noqa: F401  (tables must be known to Alembic)
    from .extensions import babel, csrf, db, limiter, login_manager, migrate

    app.session_interface = CookielessSessionInterface()
    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    csrf.init_app(app)
    limiter.init_app(app)
    _limit_explicitly(app, limiter)
    babel.init_app(app, locale_selector=select_locale)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = None
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        with app.app_context():
            _tune_sqlite(db.engine)
    from .storage import response_journal

    app.extensions["response_journal"] = response_journal(app)

    from .auth.services import load_user

    login_manager.user_loader(load_user)

    from .templating import form_error_items, in_french

    app.jinja_env.globals["form_error_items"] = form_error_items
    app.jinja_env.globals["in_french"] = in_french

    @app.context_processor
    def inject_locale():
        from flask_babel import get_locale

        return {"current_lang": str(get_locale())}


def _limit_explicitly(app: Flask, limiter) -> None:
    """Keep Flask-Limiter's storage and strategy; drop its hooks on every request.

    Every limit here is explicit: survey submissions are counted by their view
    (`respond.services.count_submission`), sign-in attempts by the decorator on the
    sign-in view, which checks its own limit. The extension's hooks would resolve
    default, application and blueprint limits, which this app does not have, on every
    request, and write X-RateLimit-* headers, which a phone has no use for: measured, a
    fifth of a survey page's cost. A refused request still says when to retry (`errors`).
    """
    for name in ("RATELIMIT_DEFAULT", "RATELIMIT_APPLICATION"):
        if app.config.get(name):
            raise ConfigurationError(
                f"{name} n'est pas pris en charge : les limites sont SURVEY_RATE_LIMIT et la connexion."
            )

    def is_limiter_hook(function) -> bool:
        bound_to = function.args[0] if isinstance(function, partial) and function.args else None
        return getattr(function, "__self__", bound_to) is limiter

    for hooks in (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs):
        hooks[None] = [f for f in hooks.get(None, ()) if not is_limiter_hook(f)]


def _tune_sqlite(engine) -> None:
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        # WAL lets readers work while a response is written; the busy timeout makes
        # concurrent workers wait for the write lock instead of failing.
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


#: The interface's languages, French first; built once (Flask-Babel would parse a
#: language code on every request, a Locale it takes as it is).
LOCALES = {code: Locale.parse(code) for code in ("fr", "en")}


def select_locale() -> Locale:
    return LOCALES[interface_language(request.environ)]


def interface_language(environ) -> str:
    """A request's interface language: ?lang= first (forms post back to their own
    address, query included), then the browser's preference, then French."""
    query = environ.get("QUERY_STRING")
    lang = next((v for k, v in parse_qsl(query, keep_blank_values=True) if k == "lang"), None) if query else None
    if lang not in LOCALES:
        lang = _preferred_language(environ.get("HTTP_ACCEPT_LANGUAGE", ""))
    return lang


@lru_cache(maxsize=512)
def _preferred_language(accept_language: str) -> str:
    """The interface language a browser's `Accept-Language` prefers, French by default.

    Browsers send a handful of distinct values, each parsed once per worker: parsing
    one on every request was a sixth of a survey page's cost.
    """
    return parse_accept_header(accept_language, LanguageAccept).best_match(LOCALES) or "fr"


def register_blueprints(app: Flask) -> None:
    from .auth import bp as auth_bp
    from .health import bp as health_bp
    from .reports import bp as reports_bp
    from .respond import bp as respond_bp

    app.register_blueprint(respond_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(reports_bp)


def register_errorhandlers(app: Flask) -> None:
    from .errors import register_errorhandlers as register

    register(app)


def register_commands(app: Flask) -> None:
    from .cli import barometer_cli

    app.cli.add_command(barometer_cli)


SECURITY_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
)


def register_security_headers(app: Flask) -> None:
    @app.after_request
    def _headers(response):
        response.headers.extend(SECURITY_HEADERS)
        return response


class CookielessSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, at no cost to a request that carries none.

    Only staff sign in; a resident's request has no session cookie and gets none. Flask
    builds the cookie's signer on every request before looking for the cookie, and
    reads every cookie setting before finding there is nothing to save: measured, about
    30 µs of the 0.8 ms a submission takes in the application. The behaviour is Flask's
    own: an empty new session when there is no cookie; no cookie and no `Vary: Cookie`
    for a session that is empty, unchanged and never read.
    """

    def open_session(self, app: Flask, request):
        if "HTTP_COOKIE" not in request.environ or self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session, response) -> None:
        if session or session.modified:
            super().save_session(app, session, response)
        elif session.accessed and "Cookie" not in response.headers.get("Vary", ""):
            response.vary.add("Cookie")  # read, empty: Flask's answer without its cookie settings
