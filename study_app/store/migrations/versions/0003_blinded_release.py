"""Blinded release: each arm's reading round, an opaque reference for every assignment, server keys

Revision ID: 0003_blinded_release
Revises: 0002_sign_in_throttle
Create Date: 2026-12-01 19:30:00

The reader's browser used to receive assignment ids, sequential integers inserted arm by arm, so their
order told an attending which drafts came from residents. Every assignment now carries ``case_ref``, a
random string that the browser sees instead. ``arm.reading_round`` says in which reading round an arm's
cases open (see docs/designs.md); existing arms get the round the design parser would give them. ``server_key`` keeps the secret that signs
Streamlit's cookies across restarts (and shares it between replicas): with a fresh secret per process, every
open tab's websocket was refused after a restart until the reader reloaded the page.
"""

import secrets

import sqlalchemy as sa
from alembic import op

import study_app.store.models

revision = "0003_blinded_release"
down_revision = "0002_sign_in_throttle"
branch_labels = None
depends_on = None


def _rounds(arms: list[dict]) -> dict[int, int]:
    # The parser's rule (study_app.designs.design._reading_rounds), restated here so that this migration
    # keeps meaning what it meant when written even if the application's code moves on.
    rounds = {a["id"]: 1 for a in arms}
    by_key = {(a["study_id"], a["key"]): a for a in arms}
    for _ in range(len(arms) + 1):
        changed = False
        for arm in arms:
            needed = rounds[arm["id"]]
            for source in arm["draft_sources"] or []:
                if source.get("kind") == "arm" and (arm["study_id"], source.get("arm")) in by_key:
                    needed = max(needed, rounds[by_key[(arm["study_id"], source["arm"])]["id"]] + 1)
            for peer in arms:
                if (peer["study_id"], peer["role"], peer["task"]) == (arm["study_id"], arm["role"], arm["task"]):
                    needed = max(needed, rounds[peer["id"]])
            if needed != rounds[arm["id"]]:
                rounds[arm["id"]], changed = needed, True
        if not changed:
            break
    return rounds


def upgrade() -> None:
    # Plain ADD COLUMN (no table rebuild): SQLite can do it in place, and the assignment table is referenced
    # by most others.
    op.add_column("arm", sa.Column("reading_round", sa.Integer(), nullable=False, server_default="1"))
    op.add_column("assignment", sa.Column("case_ref", sa.String(length=32), nullable=True))
    bind = op.get_bind()
    arm_table = sa.table("arm", sa.column("id"), sa.column("study_id"), sa.column("key"), sa.column("role"),
                         sa.column("task"), sa.column("draft_sources", sa.JSON), sa.column("reading_round"))
    arms = [dict(row._mapping) for row in bind.execute(sa.select(arm_table))]
    for arm_id, reading_round in _rounds(arms).items():
        if reading_round != 1:
            bind.execute(arm_table.update().where(arm_table.c.id == arm_id).values(reading_round=reading_round))
    assignment_table = sa.table("assignment", sa.column("id"), sa.column("case_ref"))
    for (assignment_id,) in bind.execute(sa.select(assignment_table.c.id)).all():
        bind.execute(assignment_table.update().where(assignment_table.c.id == assignment_id)
                     .values(case_ref=secrets.token_hex(16)))
    op.create_index("ix_assignment_case_ref", "assignment", ["case_ref"], unique=True)
    op.create_table(
        "server_key",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.Column("created_at", study_app.store.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_server_key")),
    )


def downgrade() -> None:
    op.drop_table("server_key")
    op.drop_index("ix_assignment_case_ref", table_name="assignment")
    with op.batch_alter_table("assignment") as batch_op:
        batch_op.drop_column("case_ref")
    with op.batch_alter_table("arm") as batch_op:
        batch_op.drop_column("reading_round")
