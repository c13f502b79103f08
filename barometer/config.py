"""Settings, read from the environment (every one is documented in the README)."""

import os
from pathlib import Path

INSTANCE_DIR = Path(__file__).resolve().parent.parent / "instance"


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on", "oui"}


def _list(name: str) -> list[str] | None:
    """A comma-separated setting as a list; None when unset or empty."""
    items = [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]
    return items or None


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        return f"sqlite:///{INSTANCE_DIR / 'barometre.sqlite3'}"
    # Hosting platforms often hand out postgres:// URLs; SQLAlchemy wants a driver.
    if url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgres://")
    elif url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def _secret_key() -> str | None:
    key = os.environ.get("SECRET_KEY")
    if key:
        return key
    # `make run` writes a random key here once, so that every worker shares it.
    path = INSTANCE_DIR / "secret_key"
    if path.exists():
        return path.read_text().strip()
    return None


class Config:
    """Settings for a real deployment; no default for SECRET_KEY."""

    SECRET_KEY = _secret_key()
    SQLALCHEMY_DATABASE_URI = _database_url()
    #: Engine options; `create_app` adds a liveness check of pooled connections for a
    #: database server (a file database has no connection to lose).
    SQLALCHEMY_ENGINE_OPTIONS: dict = {}
    #: PostgreSQL only: longest a statement may run, and wait for a lock (milliseconds;
    #: 0: no limit), so that a blocked write fails alone instead of holding every worker.
    DATABASE_STATEMENT_TIMEOUT = int(os.environ.get("DATABASE_STATEMENT_TIMEOUT", "5000"))
    DATABASE_LOCK_TIMEOUT = int(os.environ.get("DATABASE_LOCK_TIMEOUT", "2000"))
    BABEL_DEFAULT_LOCALE = "fr"
    BABEL_TRANSLATION_DIRECTORIES = str(Path(__file__).parent / "translations")
    #: Limit on survey submissions per client address (Flask-Limiter syntax).
    SURVEY_RATE_LIMIT = os.environ.get("SURVEY_RATE_LIMIT", "20 per minute;200 per hour")
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", "memory://")
    RATELIMIT_ENABLED = _bool("RATELIMIT_ENABLED", True)
    #: How long a survey form may stay open before it must be reloaded (seconds).
    SURVEY_TOKEN_MAX_AGE = int(os.environ.get("SURVEY_TOKEN_MAX_AGE", str(24 * 3600)))
    #: Number of reverse proxies in front of the app whose X-Forwarded-* to trust.
    PROXY_COUNT = int(os.environ.get("PROXY_COUNT", "0"))
    #: Public base URL used in QR codes and posters (default: the request's host, when trusted).
    PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "").rstrip("/")
    #: Host names the app answers (Flask refuses any other `Host` with a 400); default:
    #: the host of PUBLIC_BASE_URL, else any (see `create_app`).
    TRUSTED_HOSTS = _list("TRUSTED_HOSTS")
    # Every message a form shows is our own (French first, translated by Babel), so
    # WTForms' built-in catalogues need not be loaded on each request.
    WTF_I18N_ENABLED = False
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", False)
    REMEMBER_COOKIE_HTTPONLY = True
    #: Largest request body accepted (bytes); a survey answer is a few kilobytes.
    MAX_CONTENT_LENGTH = int(os.environ.get("MAX_CONTENT_LENGTH", str(64 * 1024)))
    #: Seconds a service's survey definition is cached in each worker.
    SURVEY_CACHE_SECONDS = int(os.environ.get("SURVEY_CACHE_SECONDS", "30"))


class TestConfig(Config):
    """Settings for the test suite: a throw-away key and database."""

    TESTING = True
    SECRET_KEY = "test-secret-key-not-for-production"
    SQLALCHEMY_DATABASE_URI = os.environ.get("TEST_DATABASE_URL", "sqlite://")
    RATELIMIT_ENABLED = True
    RATELIMIT_STORAGE_URI = "memory://"
