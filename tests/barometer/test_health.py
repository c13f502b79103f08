"""The health check answers for the app and for a database that takes responses; on
PostgreSQL, a statement or a lock wait past its timeout fails instead of holding a worker."""

import time
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from barometer import create_app
from barometer.config import TestConfig
from barometer.extensions import db

from ..helpers import count_rows


def test_health_is_ok_when_the_database_answers(client):
    page = client.get("/sante")
    assert page.status_code == 200 and page.json == {"status": "ok", "database": True}


def test_health_writes_nothing(app):
    from barometer.models import Response

    for _ in range(3):
        assert app.test_client().get("/sante").status_code == 200
    assert count_rows(app, Response) == 0


def test_health_is_503_when_the_database_does_not_answer(app, monkeypatch):
    def down(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    with app.app_context():
        monkeypatch.setattr(db.session, "execute", down)
        page = app.test_client().get("/sante")
    assert page.status_code == 503 and page.json["database"] is False


def _sqlite_only(database_url: str) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite only")


def _postgres_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only (TEST_DATABASE_URL)")


@pytest.fixture
def app_on():
    """Build the test app on another URL of the test database; its connections closed after."""
    made = []

    def make(url: str):
        config = {key: getattr(TestConfig, key) for key in dir(TestConfig) if key.isupper()}
        made.append(create_app({**config, "SQLALCHEMY_DATABASE_URI": url}))
        return made[-1]

    yield make
    for app in made:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_health_is_503_when_the_sqlite_file_is_read_only(surveys, app_on, _schema):
    _sqlite_only(_schema)
    path = make_url(_schema).database
    read_only = app_on(f"sqlite:///file:{path}?mode=ro&uri=true")
    # Pages that only read still work; the check says responses cannot be taken.
    assert read_only.test_client().get("/s/piscine").status_code == 200
    page = read_only.test_client().get("/sante")
    assert page.status_code == 503 and page.json == {"status": "indisponible", "database": False}


def test_health_is_503_when_postgresql_is_read_only(app, app_factory, _schema):
    _postgres_only(_schema)
    read_only = app_factory(
        SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"options": "-c default_transaction_read_only=on"}}
    )
    with read_only.app_context():
        assert db.session.execute(text("SHOW transaction_read_only")).scalar_one() == "on"
        db.session.remove()
    page = read_only.test_client().get("/sante")
    assert page.status_code == 503 and page.json["database"] is False


@pytest.fixture
def reader_url(_schema):
    """The test database's URL for a role that may read every table but write none."""
    _postgres_only(_schema)
    role = f"reader_{uuid.uuid4().hex[:12]}"
    admin = create_engine(_schema)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN"))
        conn.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"))
    yield make_url(_schema).set(username=role, password=None).render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(text(f"DROP OWNED BY {role}"))
        conn.execute(text(f"DROP ROLE {role}"))
    admin.dispose()


def test_health_is_503_for_a_role_that_may_not_write(app, reader_url, app_on):
    reader = app_on(reader_url)
    with reader.app_context():
        assert db.session.execute(text("SELECT count(*) FROM response")).scalar_one() == 0
        db.session.remove()
    page = reader.test_client().get("/sante")
    assert page.status_code == 503 and page.json["database"] is False


def test_postgresql_sessions_carry_the_timeouts(app_factory, _schema):
    _postgres_only(_schema)
    app = app_factory(DATABASE_STATEMENT_TIMEOUT=4321, DATABASE_LOCK_TIMEOUT=1234)
    with app.app_context():
        assert db.session.execute(text("SHOW statement_timeout")).scalar_one() == "4321ms"
        assert db.session.execute(text("SHOW lock_timeout")).scalar_one() == "1234ms"


def test_a_statement_past_the_timeout_fails_instead_of_running_on(app_factory, _schema):
    _postgres_only(_schema)
    app = app_factory(DATABASE_STATEMENT_TIMEOUT=200)
    started = time.monotonic()
    with app.app_context(), pytest.raises(OperationalError, match="statement timeout"):
        db.session.execute(text("SELECT pg_sleep(3)"))
    assert time.monotonic() - started < 2


def test_a_locked_table_fails_the_health_check_after_the_lock_timeout(app_factory, _schema):
    """A write blocked behind a lock (a migration, a hand-made LOCK) fails after the lock
    timeout, and the health check says so, instead of waiting with every worker."""
    _postgres_only(_schema)
    app = app_factory(DATABASE_LOCK_TIMEOUT=300)
    holder = create_engine(_schema)
    try:
        with holder.begin() as conn:
            conn.execute(text("LOCK TABLE response IN ACCESS EXCLUSIVE MODE"))
            started = time.monotonic()
            page = app.test_client().get("/sante")
            waited = time.monotonic() - started
        assert page.status_code == 503 and 0.25 < waited < 2.5
        assert app.test_client().get("/sante").status_code == 200  # the lock released
    finally:
        holder.dispose()
