"""The read model's moments stored as bytes instead of JSON text.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 00:10:00

A moments vector is read for every report and home page; parsing it from JSON text cost
more than reading it. Each vector becomes its 8-byte big-endian floats (the bytes
PostgreSQL's ``float8send`` gives), converted in place.
"""

import json

import numpy as np
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _to_bytes(text):
    return None if text is None else np.asarray(json.loads(text), dtype=">f8").tobytes()


def _to_text(data):
    return None if data is None else json.dumps(np.frombuffer(data, dtype=">f8").tolist())


def _convert_sqlite(function) -> None:
    op.get_bind().connection.driver_connection.create_function("convert_moments", 1, function, deterministic=True)
    op.execute("UPDATE result_moments SET moments = convert_moments(moments)")


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION pg_temp.moments_bytes(j json) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$ "
            "SELECT coalesce(string_agg(float8send(e::float8), ''::bytea ORDER BY o), ''::bytea) "
            "FROM json_array_elements_text(j) WITH ORDINALITY AS t(e, o) $$"
        )
        op.execute("ALTER TABLE result_moments ALTER COLUMN moments TYPE bytea USING pg_temp.moments_bytes(moments)")
        op.execute("DROP FUNCTION pg_temp.moments_bytes(json)")
        return
    _convert_sqlite(_to_bytes)
    with op.batch_alter_table("result_moments", table_kwargs={"sqlite_with_rowid": False}) as batch:
        batch.alter_column("moments", existing_type=sa.JSON(), type_=sa.LargeBinary(), existing_nullable=False)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        key = ("service_id", "month", "site_id", "age_band", "sex", "area", "frequency", "variables")
        bind = op.get_bind()
        rows = bind.execute(sa.text(f"SELECT {', '.join(key)}, moments FROM result_moments")).all()
        op.execute("ALTER TABLE result_moments ALTER COLUMN moments TYPE json USING '[]'::json")
        if rows:
            bind.execute(
                sa.text(
                    "UPDATE result_moments SET moments = CAST(:moments AS json) WHERE "
                    + " AND ".join(f"{c} = :{c}" for c in key)
                ),
                [{**dict(zip(key, r[:-1], strict=True)), "moments": _to_text(bytes(r[-1]))} for r in rows],
            )
        return
    _convert_sqlite(_to_text)
    with op.batch_alter_table("result_moments", table_kwargs={"sqlite_with_rowid": False}) as batch:
        batch.alter_column("moments", existing_type=sa.LargeBinary(), type_=sa.JSON(), existing_nullable=False)
