"""Drafting jobs: a drafting run recorded in the database, claimed by a worker with a lease

Revision ID: 0004_drafting_jobs
Revises: 0003_blinded_release
Create Date: 2026-12-01 21:30:00

A drafting run used to live in a thread of the process that started it: a restart stopped it and
nothing started it again, and two replicas could both run one. Now a run is a row that workers claim
(study_app/services/drafting_jobs.py).
"""

import sqlalchemy as sa
from alembic import op

import study_app.store.models

revision = "0004_drafting_jobs"
down_revision = "0003_blinded_release"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drafting_job",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", study_app.store.models.UTCDateTime(), nullable=False),
        sa.Column("started_at", study_app.store.models.UTCDateTime(), nullable=True),
        sa.Column("finished_at", study_app.store.models.UTCDateTime(), nullable=True),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", study_app.store.models.UTCDateTime(), nullable=True),
        sa.Column("heartbeat_at", study_app.store.models.UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("succeeded", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
                           name=op.f("ck_drafting_job_status")),
        sa.ForeignKeyConstraint(["study_id"], ["study.id"], name=op.f("fk_drafting_job_study_id_study"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drafting_job")),
    )
    op.create_index("ix_drafting_job_status", "drafting_job", ["status", "id"], unique=False)
    op.create_index(op.f("ix_drafting_job_study_id"), "drafting_job", ["study_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_drafting_job_study_id"), table_name="drafting_job")
    op.drop_index("ix_drafting_job_status", table_name="drafting_job")
    op.drop_table("drafting_job")
