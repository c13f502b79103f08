"""The results read model: answer cells, driver moments and a data version per service.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 20:30:00

The tables start empty: `flask barometer rebuild-results` fills them from the responses
already stored.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

PROFILE = ("age_band", 20), ("sex", 20), ("area", 40), ("frequency", 20)


def _key(*, question: bool) -> list:
    """The key columns, service first: one service's rows are one range of the key."""
    columns = [
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("site_id", sa.Integer(), autoincrement=False, nullable=False),
    ]
    if question:
        columns.append(sa.Column("question_key", sa.String(length=64), nullable=False))
    columns += [sa.Column(name, sa.String(length=length), nullable=False) for name, length in PROFILE]
    return columns


def upgrade():
    op.create_table(
        "result_cell",
        *_key(question=True),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("total_sq", sa.Float(), nullable=False),
        sa.Column("satisfied", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_id"], ["service.id"], name=op.f("fk_result_cell_service_id_service"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint(
            "service_id",
            "month",
            "site_id",
            "question_key",
            "age_band",
            "sex",
            "area",
            "frequency",
            name=op.f("pk_result_cell"),
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "result_moments",
        *_key(question=False),
        sa.Column("variables", sa.String(length=1000), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("moments", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_id"], ["service.id"], name=op.f("fk_result_moments_service_id_service"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint(
            "service_id",
            "month",
            "site_id",
            "age_band",
            "sex",
            "area",
            "frequency",
            "variables",
            name=op.f("pk_result_moments"),
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "result_version",
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("responses", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_id"], ["service.id"], name=op.f("fk_result_version_service_id_service"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("service_id", name=op.f("pk_result_version")),
    )


def downgrade():
    op.drop_table("result_version")
    op.drop_table("result_moments")
    op.drop_table("result_cell")
