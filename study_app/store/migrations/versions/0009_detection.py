"""AI-assisted detection: a detect task, what of the AI an arm shows, the cases' labels and the readers' marks

Revision ID: 0009_detection
Revises: 0008_draft_error_annotation
Create Date: 2026-12-02 01:30:00

A ``detect`` arm asks the reader, for each finding of the design's list, whether it is present and how confident
they are that it is (docs/designs.md, "AI-assisted detection"), unaided or with the model's labels or draft shown
(``arm.ai_shown``). ``case_label`` keeps the manifest's reference standard and the model's probability per case
and finding; ``finding_mark`` the reads' marks. Existing arms show no AI output (``none``).

The task's CHECK constraint widens. SQLite cannot alter a constraint, so there the arm table is rebuilt (batch
mode), with the foreign keys that refer to it checked once the rebuilt table stands (migrations/env.py).
"""

import sqlalchemy as sa
from alembic import op

import study_app.store.models

revision = "0009_detection"
down_revision = "0008_draft_error_annotation"
branch_labels = None
depends_on = None

OLD_TASKS = ("write", "edit", "compare", "rate_reasoning")
TASKS = (*OLD_TASKS, "detect")
AI_SHOWN = ("none", "labels", "draft", "labels_and_draft")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def _rebuild_arm(tasks: tuple[str, ...], *, with_ai: bool) -> None:
    with op.batch_alter_table("arm") as batch_op:
        batch_op.drop_constraint(op.f("ck_arm_task"), type_="check")
        batch_op.create_check_constraint(op.f("ck_arm_task"), _in("task", tasks))
        if with_ai:
            batch_op.add_column(sa.Column("ai_shown", sa.String(16), nullable=False, server_default="none"))
            batch_op.create_check_constraint(op.f("ck_arm_ai_shown"), _in("ai_shown", AI_SHOWN))
        else:
            batch_op.drop_constraint(op.f("ck_arm_ai_shown"), type_="check")
            batch_op.drop_column("ai_shown")


def upgrade() -> None:
    _rebuild_arm(TASKS, with_ai=True)
    op.create_table(
        "case_label",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("finding", sa.String(64), nullable=False),
        sa.Column("reference", sa.Integer(), nullable=True),
        sa.Column("model_probability", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["case.id"], ondelete="RESTRICT", name=op.f("fk_case_label_case_id_case")),
        sa.UniqueConstraint("case_id", "finding", name=op.f("uq_case_label_case_id_finding")),
        sa.CheckConstraint("reference IS NULL OR reference IN (0, 1)", name=op.f("ck_case_label_reference")),
        sa.CheckConstraint("model_probability IS NULL OR (model_probability >= 0 AND model_probability <= 1)",
                           name=op.f("ck_case_label_model_probability")),
    )
    op.create_index(op.f("ix_case_label_case_id"), "case_label", ["case_id"])
    op.create_table(
        "finding_mark",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("assignment_id", sa.Integer(), nullable=False),
        sa.Column("finding", sa.String(64), nullable=False),
        sa.Column("present", sa.Boolean(), nullable=True),
        sa.Column("confidence", sa.Integer(), nullable=True),
        sa.Column("marked_at", study_app.store.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["assignment_id"], ["assignment.id"], ondelete="RESTRICT",
                                name=op.f("fk_finding_mark_assignment_id_assignment")),
        sa.UniqueConstraint("assignment_id", "finding", name=op.f("uq_finding_mark_assignment_id_finding")),
    )
    op.create_index(op.f("ix_finding_mark_assignment_id"), "finding_mark", ["assignment_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_finding_mark_assignment_id"), table_name="finding_mark")
    op.drop_table("finding_mark")
    op.drop_index(op.f("ix_case_label_case_id"), table_name="case_label")
    op.drop_table("case_label")
    _rebuild_arm(OLD_TASKS, with_ai=False)
