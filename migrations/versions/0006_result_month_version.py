"""A data version per service and month, for caches of a date range.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 23:40:00

Filled from the read model's months, each with its service's current data version.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "result_month_version",
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_id"], ["service.id"], name=op.f("fk_result_month_version_service_id_service"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("service_id", "month", name=op.f("pk_result_month_version")),
        sqlite_with_rowid=False,
    )
    op.execute(
        "INSERT INTO result_month_version (service_id, month, version) "
        "SELECT DISTINCT c.service_id, c.month, v.version FROM result_cell c "
        "JOIN result_version v ON v.service_id = c.service_id WHERE c.question_key = '_responses'"
    )


def downgrade():
    op.drop_table("result_month_version")
