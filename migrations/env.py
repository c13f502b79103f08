"""Alembic environment, run through Flask-Migrate (`flask db ...`)."""

import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app

config = context.config
# Tests run migrations in-process: keep their loggers as the test runner set them.
if config.config_file_name is not None and not current_app.testing:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")

db = current_app.extensions["migrate"].db
config.set_main_option("sqlalchemy.url", db.engine.url.render_as_string(hide_password=False).replace("%", "%%"))
target_metadata = db.metadata


def run_migrations_offline():
    """Emit SQL to the script output instead of running it."""
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    """Run migrations against the configured database."""

    def process_revision_directives(context, revision, directives):
        # An autogenerate with no change writes no empty file.
        if getattr(config.cmd_opts, "autogenerate", False):
            script = directives[0]
            if script.upgrade_ops.is_empty():
                directives[:] = []
                logger.info("No changes in schema detected.")

    conf_args = dict(current_app.extensions["migrate"].configure_args)
    conf_args.setdefault("process_revision_directives", process_revision_directives)
    sqlite = db.engine.dialect.name == "sqlite"
    # SQLite cannot ALTER most things: batch mode rebuilds the table instead.
    conf_args.setdefault("render_as_batch", sqlite)
    with db.engine.connect() as connection:
        if sqlite:
            # Rebuilding a table drops it, which enforced foreign keys (the app turns them
            # on for every connection) refuse as soon as a row refers to it: off during
            # the migration, as Alembic's batch mode asks, then on again, and checked.
            _foreign_keys(connection, "OFF")
        try:
            context.configure(connection=connection, target_metadata=target_metadata, **conf_args)
            with context.begin_transaction():
                context.run_migrations()
            if sqlite:
                # SQLite's schema changes are not transactional: the migration is applied.
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(
                        "la migration est appliquée, mais des lignes font référence à des lignes "
                        f"absentes (table, ligne, table visée) : {broken[:5]} ; restaurez la sauvegarde "
                        "de la base et signalez l'erreur"
                    )
        finally:
            if sqlite:
                try:
                    _foreign_keys(connection, "ON")
                except Exception:  # a connection that cannot be restored is not pooled again
                    connection.invalidate()


def _foreign_keys(connection, state: str) -> None:
    """Turn SQLite's foreign keys on or off (only outside a transaction, hence the commit)."""
    connection.commit()
    connection.exec_driver_sql(f"PRAGMA foreign_keys={state}")
    connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
