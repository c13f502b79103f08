"""Baromètre: a satisfaction barometer for local public services."""

from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask, request
from flask import Request as FlaskRequest
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from .config import Config

ROOT = Path(__file__).resolve().parent.parent


class ConfigurationError(RuntimeError):
    """A setting the app cannot start with; the message says what to do, in French."""


class Request(FlaskRequest):
    """Flask's request, refusing a form sent in chunks past `MAX_CONTENT_LENGTH`."""

    def _load_form_data(self) -> None:
        # A body without Content-Length (chunked) is read by Werkzeug up to the limit
        # and no further, without a word: the form would be parsed from its start, and
        # a cut answer stored. Read first, it is refused like a declared one (413).
        limit = self.max_content_length
        if limit is not None and self.content_length is None and len(self.get_data()) >= limit:
            raise RequestEntityTooLarge()
        super()._load_form_data()


def create_app(config: type | dict | None = None) -> Flask:
    """Build the application; tests pass their own config class or mapping."""
    app = Flask(__name__, template_folder=str(ROOT / "templates"), instance_path=str(ROOT / "instance"))
    app.request_class = Request
    app.config.from_object(Config)
    if isinstance(config, dict):
        app.config.update(config)
    elif config is not None:
        app.config.from_object(config)
    # Staff forms are dated by their CSRF token, the survey by its own signed token.
    app.config["WTF_CSRF_TIME_LIMIT"] = app.config["SURVEY_TOKEN_MAX_AGE"]
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_pre_ping": True, **app.config["SQLALCHEMY_ENGINE_OPTIONS"]}
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
        connect_args = {"options": postgres_timeouts(app.config), **options.get("connect_args", {})}
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {**options, "connect_args": connect_args}
    if not app.config.get("TRUSTED_HOSTS") and app.config["PUBLIC_BASE_URL"]:
        # The public address is the one host a deployment serves: any other `Host`
        # header would end up in the links the app writes (QR codes, posters).
        app.config["TRUSTED_HOSTS"] = [urlsplit(app.config["PUBLIC_BASE_URL"]).hostname]
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


def postgres_timeouts(config) -> str:
    """PostgreSQL's session options for the statement and lock timeouts (milliseconds)."""
    return (
        f"-c statement_timeout={int(config['DATABASE_STATEMENT_TIMEOUT'])} "
        f"-c lock_timeout={int(config['DATABASE_LOCK_TIMEOUT'])}"
    )


def register_middleware(app: Flask) -> None:
    """Trust the reverse proxies' X-Forwarded-* headers, as many as PROXY_COUNT says."""
    if app.config["PROXY_COUNT"]:
        n = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)


def register_extensions(app: Flask) -> None:
    from . import models  # noqa: F401  (tables must be known to Alembic)
    from .extensions import babel, csrf, db, limiter, login_manager, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    csrf.init_app(app)
    limiter.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = None
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        with app.app_context():
            _tune_sqlite(db.engine)

    from .auth.services import load_user

    login_manager.user_loader(load_user)

    from .templating import form_error_items, in_french

    app.jinja_env.globals["form_error_items"] = form_error_items
    app.jinja_env.globals["in_french"] = in_french

    @app.context_processor
    def inject_locale():
        from flask_babel import get_locale

        return {"current_lang": str(get_locale())}


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


#: The interface's languages, French first.
LANGUAGES = ("fr", "en")


def select_locale() -> str:
    """A request's interface language: ?lang= first (forms post back to their own
    address, query included), then the browser's preference, then French."""
    lang = request.args.get("lang")
    if lang in LANGUAGES:
        return lang
    return request.accept_languages.best_match(LANGUAGES) or "fr"


def register_blueprints(app: Flask) -> None:
    from .auth import bp as auth_bp
    from .health import bp as health_bp
    from .reports import bp as reports_bp
    from .respond import bp as respond_bp
    from .steering import bp as steering_bp

    app.register_blueprint(respond_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(reports_bp)
    app.register_blueprint(steering_bp)


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
