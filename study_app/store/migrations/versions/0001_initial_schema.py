"""Initial schema: studies, readers, cases, drafts, arms, assignments, answers and the audit log

Revision ID: 0001_initial
Revises: 
Create Date: 2026-11-23 01:45:55.495638
"""

from alembic import op
import sqlalchemy as sa
import study_app.store.models


revision = '0001_initial'
down_revision = None
branch_labels = None
depends_on = None


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _draft_to_assignment_fk() -> list:
    # draft and assignment refer to each other. SQLite accepts a forward reference
    # inline (it has no ALTER ADD CONSTRAINT); other backends get it after both exist.
    if _sqlite():
        return [sa.ForeignKeyConstraint(["source_assignment_id"], ["assignment.id"],
                                        name="fk_draft_source_assignment_id_assignment", ondelete="RESTRICT")]
    return []


# The audit log is append-only: the database refuses to change or remove an event.
SQLITE_EVENT_TRIGGERS = [
    """CREATE TRIGGER event_no_update BEFORE UPDATE ON event
       BEGIN SELECT RAISE(ABORT, 'event log is append-only'); END""",
    """CREATE TRIGGER event_no_delete BEFORE DELETE ON event
       BEGIN SELECT RAISE(ABORT, 'event log is append-only'); END""",
]
POSTGRES_EVENT_TRIGGERS = [
    """CREATE FUNCTION event_append_only() RETURNS trigger AS $$
       BEGIN RAISE EXCEPTION 'event log is append-only'; END; $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER event_no_change BEFORE UPDATE OR DELETE ON event
       FOR EACH ROW EXECUTE FUNCTION event_append_only()""",
]


def upgrade() -> None:
    op.create_table('coordinator',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=256), nullable=False),
    sa.Column('created_at', study_app.store.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coordinator')),
    sa.UniqueConstraint('username', name=op.f('uq_coordinator_username'))
    )
    op.create_table('study',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('design_name', sa.String(length=200), nullable=False),
    sa.Column('design_toml', sa.Text(), nullable=False),
    sa.Column('design_sha256', sa.String(length=64), nullable=False),
    sa.Column('cohort_manifest', sa.Text(), nullable=False),
    sa.Column('cohort_root', sa.Text(), nullable=False),
    sa.Column('cohort_sha256', sa.String(length=64), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('created_at', study_app.store.models.UTCDateTime(), nullable=False),
    sa.Column('launched_at', study_app.store.models.UTCDateTime(), nullable=True),
    sa.Column('closed_at', study_app.store.models.UTCDateTime(), nullable=True),
    sa.CheckConstraint("status IN ('draft', 'open', 'paused', 'closed')", name=op.f('ck_study_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_study'))
    )
    op.create_table('arm',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('ordinal', sa.Integer(), nullable=False),
    sa.Column('task', sa.String(length=16), nullable=False),
    sa.Column('role', sa.String(length=64), nullable=False),
    sa.Column('draft_sources', sa.JSON(), nullable=False),
    sa.Column('timed', sa.Boolean(), nullable=False),
    sa.Column('readers_per_case', sa.Integer(), nullable=False),
    sa.Column('instructions', sa.Text(), nullable=False),
    sa.CheckConstraint("task IN ('write', 'edit', 'compare', 'rate_reasoning')", name=op.f('ck_arm_task')),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_arm_study_id_study'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_arm')),
    sa.UniqueConstraint('study_id', 'key', name=op.f('uq_arm_study_id_key'))
    )
    op.create_table('case',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.String(length=32), nullable=False),
    sa.Column('case_key', sa.String(length=64), nullable=False),
    sa.Column('manifest_row', sa.Integer(), nullable=False),
    sa.Column('indication', sa.Text(), nullable=False),
    sa.Column('comparison', sa.Text(), nullable=False),
    sa.Column('reference_findings', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_case_study_id_study'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case')),
    sa.UniqueConstraint('study_id', 'case_key', name=op.f('uq_case_study_id_case_key'))
    )
    op.create_table('reader',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.String(length=32), nullable=False),
    sa.Column('reader_key', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('created_at', study_app.store.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_reader_study_id_study'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reader')),
    sa.UniqueConstraint('study_id', 'reader_key', name=op.f('uq_reader_study_id_reader_key'))
    )
    op.create_table('image',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('ordinal', sa.Integer(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('relpath', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('view', sa.String(length=16), nullable=False),
    sa.Column('is_prior', sa.Boolean(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('format', sa.String(length=8), nullable=False),
    sa.Column('bits_stored', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['case.id'], name=op.f('fk_image_case_id_case'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_image')),
    sa.UniqueConstraint('case_id', 'ordinal', name=op.f('uq_image_case_id_ordinal'))
    )
    with op.batch_alter_table('image', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_image_case_id'), ['case_id'], unique=False)

    op.create_table('invite',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reader_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', study_app.store.models.UTCDateTime(), nullable=False),
    sa.Column('expires_at', study_app.store.models.UTCDateTime(), nullable=False),
    sa.Column('used_at', study_app.store.models.UTCDateTime(), nullable=True),
    sa.Column('revoked_at', study_app.store.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['reader_id'], ['reader.id'], name=op.f('fk_invite_reader_id_reader'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invite')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_invite_token_hash'))
    )
    with op.batch_alter_table('invite', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invite_reader_id'), ['reader_id'], unique=False)

    op.create_table('mc_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('ordinal', sa.Integer(), nullable=False),
    sa.Column('item_key', sa.String(length=64), nullable=False),
    sa.Column('question', sa.Text(), nullable=False),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('answer', sa.String(length=16), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['case.id'], name=op.f('fk_mc_item_case_id_case'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mc_item')),
    sa.UniqueConstraint('case_id', 'item_key', name=op.f('uq_mc_item_case_id_item_key'))
    )
    with op.batch_alter_table('mc_item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mc_item_case_id'), ['case_id'], unique=False)

    op.create_table('draft_failure',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.String(length=32), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('task', sa.String(length=16), nullable=False),
    sa.Column('mc_item_id', sa.Integer(), nullable=True),
    sa.Column('request_key', sa.String(length=64), nullable=False),
    sa.Column('backend', sa.String(length=32), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('at', study_app.store.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['case.id'], name=op.f('fk_draft_failure_case_id_case'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['mc_item_id'], ['mc_item.id'], name=op.f('fk_draft_failure_mc_item_id_mc_item'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_draft_failure_study_id_study'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_draft_failure'))
    )
    with op.batch_alter_table('draft_failure', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_draft_failure_study_id'), ['study_id'], unique=False)

    op.create_table('question',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('arm_id', sa.Integer(), nullable=False),
    sa.Column('ordinal', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('label', sa.Text(), nullable=False),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('required', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['arm_id'], ['arm.id'], name=op.f('fk_question_arm_id_arm'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_question')),
    sa.UniqueConstraint('arm_id', 'key', name=op.f('uq_question_arm_id_key'))
    )
    op.create_table('web_session',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('reader_id', sa.Integer(), nullable=True),
    sa.Column('coordinator_id', sa.Integer(), nullable=True),
    sa.Column('created_at', study_app.store.models.UTCDateTime(), nullable=False),
    sa.Column('expires_at', study_app.store.models.UTCDateTime(), nullable=False),
    sa.Column('revoked_at', study_app.store.models.UTCDateTime(), nullable=True),
    sa.CheckConstraint('(reader_id IS NULL) <> (coordinator_id IS NULL)', name=op.f('ck_web_session_one_principal')),
    sa.ForeignKeyConstraint(['coordinator_id'], ['coordinator.id'], name=op.f('fk_web_session_coordinator_id_coordinator'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['reader_id'], ['reader.id'], name=op.f('fk_web_session_reader_id_reader'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_web_session')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_web_session_token_hash'))
    )
    with op.batch_alter_table('web_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_session_reader_id'), ['reader_id'], unique=False)

    op.create_table('draft',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.String(length=32), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('mc_item_id', sa.Integer(), nullable=True),
    sa.Column('source_kind', sa.String(length=16), nullable=False),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('author_reader_id', sa.Integer(), nullable=True),
    sa.Column('source_assignment_id', sa.Integer(), nullable=True),
    sa.Column('task', sa.String(length=16), nullable=True),
    sa.Column('model_id', sa.String(length=200), nullable=True),
    sa.Column('model_revision', sa.String(length=100), nullable=True),
    sa.Column('backend', sa.String(length=32), nullable=True),
    sa.Column('server_version', sa.String(length=64), nullable=True),
    sa.Column('mode', sa.String(length=16), nullable=True),
    sa.Column('prompt', sa.Text(), nullable=True),
    sa.Column('sampling', sa.JSON(), nullable=True),
    sa.Column('seed', sa.Integer(), nullable=True),
    sa.Column('raw_output', sa.Text(), nullable=True),
    sa.Column('reasoning', sa.Text(), nullable=True),
    sa.Column('report', sa.Text(), nullable=False),
    sa.Column('answer', sa.Text(), nullable=True),
    sa.Column('parse_status', sa.String(length=16), nullable=True),
    sa.Column('finish_reason', sa.String(length=32), nullable=True),
    sa.Column('prompt_tokens', sa.Integer(), nullable=True),
    sa.Column('completion_tokens', sa.Integer(), nullable=True),
    sa.Column('latency_s', sa.Float(), nullable=True),
    sa.Column('input_hash', sa.String(length=64), nullable=True),
    sa.Column('request_key', sa.String(length=64), nullable=True),
    sa.Column('choice_index', sa.Integer(), nullable=False),
    sa.Column('created_at', study_app.store.models.UTCDateTime(), nullable=False),
    sa.CheckConstraint("origin IN ('model', 'reader')", name=op.f('ck_draft_origin')),
    sa.CheckConstraint("parse_status IS NULL OR parse_status IN ('ok', 'no_box', 'unclosed_box', 'multiple_boxes')", name=op.f('ck_draft_parse_status')),
    sa.CheckConstraint("source_kind IN ('model', 'reader', 'manifest')", name=op.f('ck_draft_source_kind')),
    sa.ForeignKeyConstraint(['author_reader_id'], ['reader.id'], name=op.f('fk_draft_author_reader_id_reader'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['case_id'], ['case.id'], name=op.f('fk_draft_case_id_case'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['mc_item_id'], ['mc_item.id'], name=op.f('fk_draft_mc_item_id_mc_item'), ondelete='RESTRICT'),
    *_draft_to_assignment_fk(),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_draft_study_id_study'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_draft')),
    sa.UniqueConstraint('source_assignment_id', name=op.f('uq_draft_source_assignment_id')),
    sa.UniqueConstraint('study_id', 'request_key', 'choice_index', name=op.f('uq_draft_study_id_request_key_choice_index'))
    )
    with op.batch_alter_table('draft', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_draft_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_draft_study_id'), ['study_id'], unique=False)

    op.create_table('assignment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.String(length=32), nullable=False),
    sa.Column('reader_id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('arm_id', sa.Integer(), nullable=False),
    sa.Column('mc_item_id', sa.Integer(), nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('source_assignment_id', sa.Integer(), nullable=True),
    sa.Column('source_b_assignment_id', sa.Integer(), nullable=True),
    sa.Column('draft_id', sa.Integer(), nullable=True),
    sa.Column('a_draft_id', sa.Integer(), nullable=True),
    sa.Column('b_draft_id', sa.Integer(), nullable=True),
    sa.Column('a_source_index', sa.Integer(), nullable=True),
    sa.Column('opened_at', study_app.store.models.UTCDateTime(), nullable=True),
    sa.Column('first_shown_at', study_app.store.models.UTCDateTime(), nullable=True),
    sa.Column('submitted_at', study_app.store.models.UTCDateTime(), nullable=True),
    sa.Column('completed_at', study_app.store.models.UTCDateTime(), nullable=True),
    sa.Column('sessions', sa.Integer(), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'ready', 'in_progress', 'submitted', 'completed')", name=op.f('ck_assignment_status')),
    sa.ForeignKeyConstraint(['a_draft_id'], ['draft.id'], name=op.f('fk_assignment_a_draft_id_draft'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['arm_id'], ['arm.id'], name=op.f('fk_assignment_arm_id_arm'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['b_draft_id'], ['draft.id'], name=op.f('fk_assignment_b_draft_id_draft'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['case_id'], ['case.id'], name=op.f('fk_assignment_case_id_case'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['draft_id'], ['draft.id'], name=op.f('fk_assignment_draft_id_draft'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['mc_item_id'], ['mc_item.id'], name=op.f('fk_assignment_mc_item_id_mc_item'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['reader_id'], ['reader.id'], name=op.f('fk_assignment_reader_id_reader'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['source_assignment_id'], ['assignment.id'], name=op.f('fk_assignment_source_assignment_id_assignment'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['source_b_assignment_id'], ['assignment.id'], name=op.f('fk_assignment_source_b_assignment_id_assignment'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_assignment_study_id_study'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assignment')),
    sa.UniqueConstraint('reader_id', 'case_id', 'arm_id', name=op.f('uq_assignment_reader_id_case_id_arm_id')),
    sa.UniqueConstraint('reader_id', 'position', name=op.f('uq_assignment_reader_id_position'))
    )
    with op.batch_alter_table('assignment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_assignment_reader_id'), ['reader_id'], unique=False)
        batch_op.create_index('ix_assignment_study_status', ['study_id', 'status'], unique=False)

    op.create_table('answer',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=False),
    sa.Column('question_id', sa.Integer(), nullable=False),
    sa.Column('label', sa.Text(), nullable=False),
    sa.Column('value', sa.String(length=64), nullable=False),
    sa.Column('answered_at', study_app.store.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignment.id'], name=op.f('fk_answer_assignment_id_assignment'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['question_id'], ['question.id'], name=op.f('fk_answer_question_id_question'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_answer')),
    sa.UniqueConstraint('assignment_id', 'question_id', name=op.f('uq_answer_assignment_id_question_id'))
    )
    with op.batch_alter_table('answer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_answer_assignment_id'), ['assignment_id'], unique=False)

    op.create_table('autosave',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('saved_at', study_app.store.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignment.id'], name=op.f('fk_autosave_assignment_id_assignment'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_autosave'))
    )
    with op.batch_alter_table('autosave', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_autosave_assignment_id'), ['assignment_id'], unique=False)

    op.create_table('event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.String(length=32), nullable=True),
    sa.Column('at', study_app.store.models.UTCDateTime(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('reader_id', sa.Integer(), nullable=True),
    sa.Column('assignment_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignment.id'], name=op.f('fk_event_assignment_id_assignment'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['reader_id'], ['reader.id'], name=op.f('fk_event_reader_id_reader'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_event_study_id_study'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event'))
    )
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_study_id'), ['study_id'], unique=False)

    op.create_table('response',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('assignment_id', sa.Integer(), nullable=False),
    sa.Column('shown_text', sa.Text(), nullable=False),
    sa.Column('final_text', sa.Text(), nullable=False),
    sa.Column('submitted_at', study_app.store.models.UTCDateTime(), nullable=False),
    sa.Column('duration_s', sa.Float(), nullable=True),
    sa.Column('active_s', sa.Float(), nullable=True),
    sa.Column('hidden_s', sa.Float(), nullable=True),
    sa.Column('idle_s', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignment.id'], name=op.f('fk_response_assignment_id_assignment'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_response')),
    sa.UniqueConstraint('assignment_id', name=op.f('uq_response_assignment_id'))
    )
    if not _sqlite():
        op.create_foreign_key("fk_draft_source_assignment_id_assignment", "draft", "assignment",
                              ["source_assignment_id"], ["id"], ondelete="RESTRICT")
    statements = SQLITE_EVENT_TRIGGERS if _sqlite() else POSTGRES_EVENT_TRIGGERS
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if _sqlite():
        op.execute("DROP TRIGGER IF EXISTS event_no_update")
        op.execute("DROP TRIGGER IF EXISTS event_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS event_no_change ON event")
        op.execute("DROP FUNCTION IF EXISTS event_append_only()")
        op.drop_constraint("fk_draft_source_assignment_id_assignment", "draft", type_="foreignkey")
    op.drop_table('response')
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_study_id'))

    op.drop_table('event')
    with op.batch_alter_table('autosave', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_autosave_assignment_id'))

    op.drop_table('autosave')
    with op.batch_alter_table('answer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_answer_assignment_id'))

    op.drop_table('answer')
    with op.batch_alter_table('assignment', schema=None) as batch_op:
        batch_op.drop_index('ix_assignment_study_status')
        batch_op.drop_index(batch_op.f('ix_assignment_reader_id'))

    op.drop_table('assignment')
    with op.batch_alter_table('draft', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_draft_study_id'))
        batch_op.drop_index(batch_op.f('ix_draft_case_id'))

    op.drop_table('draft')
    with op.batch_alter_table('web_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_web_session_reader_id'))

    op.drop_table('web_session')
    op.drop_table('question')
    with op.batch_alter_table('mc_item', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mc_item_case_id'))

    op.drop_table('mc_item')
    with op.batch_alter_table('invite', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invite_reader_id'))

    op.drop_table('invite')
    with op.batch_alter_table('image', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_image_case_id'))

    op.drop_table('image')
    with op.batch_alter_table('draft_failure', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_draft_failure_study_id'))

    op.drop_table('draft_failure')
    op.drop_table('reader')
    op.drop_table('case')
    op.drop_table('arm')
    op.drop_table('study')
    op.drop_table('coordinator')
