"""Migrations: one head, and the migrated schema is exactly what the models declare."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from barometer.extensions import db


def test_alembic_has_a_single_head(app):
    with app.app_context():
        config = app.extensions["migrate"].migrate.get_config(app.extensions["migrate"].directory)
        assert len(ScriptDirectory.from_config(config).get_heads()) == 1


def test_migrated_schema_matches_the_models(app):
    # The session fixture built the schema with `flask db upgrade`; nothing may differ.
    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, db.metadata) == []


def test_downgrade_to_base_and_upgrade_again(tmp_path):
    from flask_migrate import downgrade, upgrade
    from sqlalchemy import inspect

    from tests.conftest import _make_app

    app = _make_app(f"sqlite:///{tmp_path / 'roundtrip.sqlite3'}")
    with app.app_context():
        upgrade()
        assert "response" in inspect(db.engine).get_table_names()
        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade()
        assert set(db.metadata.tables) <= set(inspect(db.engine).get_table_names())
        db.engine.dispose()


def test_migrations_keep_responses_given_at_a_site(tmp_path):
    """A database in use (a response at a site, foreign keys enforced as the app sets
    them) migrates up and down with its rows: SQLite rebuilds a table to alter it."""
    from flask_migrate import downgrade, upgrade

    from tests.conftest import _make_app

    rows = [
        "INSERT INTO domain VALUES (1, 'd', 'Domaine', 0)",
        "INSERT INTO policy VALUES (1, 'p', 'Politique', 1, 0)",
        "INSERT INTO organisation VALUES (1, 'o', 'Commune', 'commune', '[]')",
        "INSERT INTO questionnaire VALUES (1, 'core')",
        "INSERT INTO questionnaire_version VALUES (1, 1, 1, 'c', '{}', '2026-01-01 00:00:00')",
        "INSERT INTO service (id, slug, name, organisation_id, policy_id, questionnaire_id, is_open)"
        " VALUES (1, 's', 'Service', 1, 1, 1, 1)",
        "INSERT INTO site VALUES (1, 1, 'guichet', 'Guichet')",
        "INSERT INTO response (id, token, service_id, site_id, version_id, submitted_at, channel)"
        " VALUES (1, 't', 1, 1, 1, '2026-01-01 10:00:00', 'qr')",
        "INSERT INTO answer (id, response_id, question_key, value) VALUES (1, 1, 'overall', 4)",
    ]

    def kept(conn) -> tuple:
        return conn.exec_driver_sql(
            "SELECT site.code, response.token, answer.value FROM answer"
            " JOIN response ON response.id = answer.response_id JOIN site ON site.id = response.site_id"
        ).fetchall()

    app = _make_app(f"sqlite:///{tmp_path / 'in-use.sqlite3'}")
    with app.app_context():
        upgrade(revision="0001")
        with db.engine.begin() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            for row in rows:
                conn.exec_driver_sql(row)
        upgrade()
        with db.engine.connect() as conn:
            assert kept(conn) == [("guichet", "t", 4.0)]
            assert conn.exec_driver_sql("SELECT is_open FROM site").scalar() == 1  # still taking answers
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # on again afterwards
        downgrade(revision="0001")
        with db.engine.connect() as conn:
            assert kept(conn) == [("guichet", "t", 4.0)]
        db.engine.dispose()
