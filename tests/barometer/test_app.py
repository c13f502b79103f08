"""Settings the application refuses or adapts at start-up."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from barometer import create_app
from barometer.config import TestConfig


def settings(**overrides):
    config = {key: getattr(TestConfig, key) for key in dir(TestConfig) if key.isupper()}
    config.update(overrides)
    return config


def test_no_secret_key_is_refused_with_the_way_to_set_one():
    with pytest.raises(RuntimeError, match="SECRET_KEY n'est pas défini"):
        create_app(settings(SECRET_KEY=None))


def test_pooled_connections_are_checked_only_for_a_database_server():
    sqlite = create_app(settings(SQLALCHEMY_DATABASE_URI="sqlite://"))
    server = create_app(settings(SQLALCHEMY_DATABASE_URI="postgresql+psycopg://user@db.invalid/barometre"))
    assert "pool_pre_ping" not in sqlite.config["SQLALCHEMY_ENGINE_OPTIONS"]
    assert server.config["SQLALCHEMY_ENGINE_OPTIONS"]["pool_pre_ping"] is True


def test_the_form_lifetime_dates_the_staff_forms_csrf_token_too():
    app = create_app(settings(SURVEY_TOKEN_MAX_AGE=600))
    assert app.config["WTF_CSRF_TIME_LIMIT"] == 600


def test_a_missing_secret_key_is_said_plainly_by_the_entry_point(tmp_path):
    """`gunicorn wsgi:app` and `flask ...` print the French message, not a traceback."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "SECRET_KEY": "", "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    script = "import barometer.config as c; c.Config.SECRET_KEY = None; import wsgi"  # as with no instance/secret_key
    out = subprocess.run([sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.startswith("Baromètre : SECRET_KEY n'est pas défini")
    assert "Traceback" not in out.stderr
