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
