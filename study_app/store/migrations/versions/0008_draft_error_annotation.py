"""Error annotation of drafts: an arm may ask for it, and each annotated edit of a draft is a row

Revision ID: 0008_draft_error_annotation
Revises: 0007_sites
Create Date: 2026-12-01 23:00:00

An edit arm with ``annotate_errors = true`` asks the reader, after SUBMIT, to mark each edit of the draft-to-final
diff with a ReXVal error category (or "not an error") and its clinical significance (docs/designs.md, "Error
annotation of drafts"). Existing arms ask for none.
"""

import sqlalchemy as sa
from alembic import op
import study_app.store.models

revision = "0008_draft_error_annotation"
down_revision = "0007_sites"
branch_labels = None
depends_on = None

CATEGORIES = ("false_finding", "omitted_finding", "wrong_location", "wrong_severity", "false_comparison",
              "omitted_comparison", "not_an_error")


def upgrade() -> None:
    # Plain ADD COLUMN (no table rebuild), like 0006.
    op.add_column("arm", sa.Column("annotate_errors", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "error_annotation",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("assignment_id", sa.Integer(), nullable=False),
        sa.Column("segment", sa.Integer(), nullable=False),
        sa.Column("edit_kind", sa.String(16), nullable=False),
        sa.Column("draft_text", sa.Text(), nullable=False),
        sa.Column("final_text", sa.Text(), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("significant", sa.Boolean(), nullable=True),
        sa.Column("annotated_at", study_app.store.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["assignment_id"], ["assignment.id"], ondelete="RESTRICT",
                                name="fk_error_annotation_assignment_id_assignment"),
        sa.UniqueConstraint("assignment_id", "segment", name="uq_error_annotation_assignment_id_segment"),
        sa.CheckConstraint("category IN (" + ", ".join(f"'{c}'" for c in CATEGORIES) + ")",
                           name="ck_error_annotation_category"),
        sa.CheckConstraint("(category = 'not_an_error') = (significant IS NULL)",
                           name="ck_error_annotation_significance"),
    )
    op.create_index("ix_error_annotation_assignment_id", "error_annotation", ["assignment_id"])


def downgrade() -> None:
    op.drop_index("ix_error_annotation_assignment_id", table_name="error_annotation")
    op.drop_table("error_annotation")
    with op.batch_alter_table("arm") as batch_op:
        batch_op.drop_column("annotate_errors")
