"""Past months of the read model packed for reading.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 03:10:00

A month of a service's cells or moments in one value (`results.pack_rows`), valid for
one version of the month: reading a year of 200 services was reading millions of rows.
Empty at first: readers pack the months they read.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "result_pack",
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_id"], ["service.id"], name=op.f("fk_result_pack_service_id_service"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("service_id", "month", "kind", name=op.f("pk_result_pack")),
        sqlite_with_rowid=False,
    )


def downgrade():
    op.drop_table("result_pack")
