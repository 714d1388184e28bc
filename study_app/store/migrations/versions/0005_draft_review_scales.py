"""Draft review before launch (drafts replaced by a regeneration, coordinators' recorded overrides) and question scales

Revision ID: 0005_draft_review_scales
Revises: 0004_drafting_jobs
Create Date: 2026-12-08 10:00:00

A model draft cut by the token limit, not parsed, empty or duplicated used to reach readers unannounced.
Launch now refuses such a draft unless a coordinator records why it may be shown (``draft_override``), or
the draft is regenerated (a larger token budget): the regenerated draft replaces the old one, which stays with
its provenance and ``superseded_at`` set. ``question.scale`` holds a visual-analogue question's range and
anchors and a Likert question's neutral point (docs/designs.md, "Questions").
"""

import sqlalchemy as sa
from alembic import op

import study_app.store.models

revision = "0005_draft_review_scales"
down_revision = "0004_drafting_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN: SQLite does it in place, without rebuilding a table others refer to.
    op.add_column("draft", sa.Column("superseded_at", study_app.store.models.UTCDateTime(), nullable=True))
    op.add_column("question", sa.Column("scale", sa.JSON(), nullable=True))
    op.create_table(
        "draft_override",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.String(length=32), nullable=False),
        sa.Column("draft_id", sa.Integer(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("at", study_app.store.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["draft_id"], ["draft.id"], name=op.f("fk_draft_override_draft_id_draft"),
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["study_id"], ["study.id"], name=op.f("fk_draft_override_study_id_study"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_draft_override")),
        sa.UniqueConstraint("draft_id", name=op.f("uq_draft_override_draft_id")),
    )
    op.create_index(op.f("ix_draft_override_study_id"), "draft_override", ["study_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_draft_override_study_id"), table_name="draft_override")
    op.drop_table("draft_override")
    with op.batch_alter_table("question") as batch_op:
        batch_op.drop_column("scale")
    with op.batch_alter_table("draft") as batch_op:
        batch_op.drop_column("superseded_at")
