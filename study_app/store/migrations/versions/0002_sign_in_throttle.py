"""Sign-in throttle: failed password sign-ins per username and per client address (backoff, lockout)

Revision ID: 0002_sign_in_throttle
Revises: 0001_initial
"""

from alembic import op
import sqlalchemy as sa
import study_app.store.models


revision = '0002_sign_in_throttle'
down_revision = '0001_initial'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'sign_in_throttle',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('key', sa.String(length=128), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('last_failure_at', study_app.store.models.UTCDateTime(), nullable=True),
        sa.Column('locked_at', study_app.store.models.UTCDateTime(), nullable=True),
        sa.CheckConstraint("kind IN ('user', 'address')", name=op.f('ck_sign_in_throttle_kind')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sign_in_throttle')),
        sa.UniqueConstraint('kind', 'key', name=op.f('uq_sign_in_throttle_kind_key')),
    )


def downgrade() -> None:
    op.drop_table('sign_in_throttle')
