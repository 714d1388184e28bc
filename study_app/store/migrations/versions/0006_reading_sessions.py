"""Reading sessions: the session of every assignment (crossover designs with a washout)

Revision ID: 0006_reading_sessions
Revises: 0005_draft_review_scales
Create Date: 2026-12-01 22:00:00

A design with ``[sessions]`` reads each case of a crossover in several sessions, one modality per session,
at least ``washout_days`` apart (docs/designs.md, "Sessions and washout"). The session is the assignment's:
one arm's reads fall in different sessions for different readers and cases. Every existing assignment was
allocated without sessions, so it is in session 1.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_reading_sessions"
down_revision = "0005_draft_review_scales"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no table rebuild): the assignment table is referenced by most others.
    op.add_column("assignment", sa.Column("reading_session", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("assignment") as batch_op:
        batch_op.drop_column("reading_session")
