"""Fixtures shared by the whole suite: an app on a real database, a client, a runner.

The database is SQLite (a temporary file) by default, or the PostgreSQL of
TEST_DATABASE_URL. Its schema is built once per session by the Alembic migrations,
and every table is emptied after each test.
"""

import os
import shutil

import matplotlib
import pytest
from sqlalchemy import text

matplotlib.use("Agg")

from barometer import create_app  # noqa: E402
from barometer.config import TestConfig  # noqa: E402
from barometer.extensions import db  # noqa: E402
from barometer.respond import services as respond_services  # noqa: E402
from surveys.schema import DEFAULT_ROOT  # noqa: E402


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"


def _make_app(database_url, **overrides):
    config = {key: getattr(TestConfig, key) for key in dir(TestConfig) if key.isupper()}
    config.update(SQLALCHEMY_DATABASE_URI=database_url, **overrides)
    return create_app(config)


@pytest.fixture(scope="session")
def _schema(database_url):
    from flask_migrate import upgrade

    app = _make_app(database_url)
    with app.app_context():
        with db.engine.begin() as conn:
            db.metadata.drop_all(conn)
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        upgrade()
    return database_url


@pytest.fixture
def app_factory(_schema):
    """Build an app on the test database with extra settings; tables emptied afterwards."""
    made = []

    def make(**overrides):
        app = _make_app(_schema, **overrides)
        made.append(app)
        return app

    yield make
    if made:
        empty_tables(made[0])
    respond_services.clear_cache()


def empty_tables(app) -> None:
    """Delete every row, children first, and close the app's connections; forget what
    this process cached of them (surveys by slug, results by data version: the next
    test's database reuses the slugs and starts its versions again)."""
    from barometer.steering.services import clear_cache as clear_steering_caches

    with app.app_context():
        db.session.remove()
        with db.engine.begin() as conn:
            for table in reversed(db.metadata.sorted_tables):
                conn.execute(table.delete())
        db.engine.dispose()
    respond_services.clear_cache()
    clear_steering_caches()


@pytest.fixture
def app(app_factory):
    """The app, with no context pushed: each request gets its own, as in production."""
    return app_factory()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def surveys(app):
    """The project's own survey definitions, loaded."""
    from barometer.loader import load_surveys
    from surveys.schema import DEFAULT_ROOT

    with app.app_context():
        load_surveys(DEFAULT_ROOT)
    respond_services.clear_cache()  # surveys another test's database cached under the same slugs
    return app


@pytest.fixture
def tree(tmp_path):
    """A writable copy of the project's surveys folder."""
    root = tmp_path / "surveys"
    shutil.copytree(DEFAULT_ROOT, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return root
