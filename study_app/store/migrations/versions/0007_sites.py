"""Sites: the site of every reader and case (multi-site studies)

Revision ID: 0007_sites
Revises: 0006_reading_sessions
Create Date: 2026-12-01 23:00:00

A multi-site study gives each reader and each case a site (the readers CSV's and the manifest's ``site``
column), and its allocation may keep readers to their own site's cases or cross them (docs/designs.md,
"[sites]"). Every existing reader and case was imported without one, so it has no site (NULL): a study
without sites is one site.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_sites"
down_revision = "0006_reading_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no table rebuild): both tables are referenced by most others.
    op.add_column("reader", sa.Column("site", sa.String(64), nullable=True))
    op.add_column("case", sa.Column("site", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("case") as batch_op:
        batch_op.drop_column("site")
    with op.batch_alter_table("reader") as batch_op:
        batch_op.drop_column("site")
