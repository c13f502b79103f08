"""Sites can be closed: a site gone from its file stops taking answers.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 11:50:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    # Every existing site stays open; batch mode lets SQLite add the column as declared.
    with op.batch_alter_table("site") as batch:
        batch.add_column(sa.Column("is_open", sa.Boolean(), server_default=sa.true(), nullable=False))


def downgrade():
    with op.batch_alter_table("site") as batch:
        batch.drop_column("is_open")
