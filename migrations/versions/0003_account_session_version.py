"""Staff sessions can be revoked: a counter on the account that every session carries.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 20:40:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    # Existing accounts start at 1; sessions signed before this revision carry none and end.
    with op.batch_alter_table("account") as batch:
        batch.add_column(sa.Column("session_version", sa.Integer(), server_default="1", nullable=False))


def downgrade():
    with op.batch_alter_table("account") as batch:
        batch.drop_column("session_version")
