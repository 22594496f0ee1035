"""payout runs fan out: shards of vendors worked by every worker; one payout per vendor,
currency and run

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 13:00:00

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('payout_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cutoff', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('vendors_total', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('shards_total', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('shards_done', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('payout_runs', schema=None) as batch_op:
        for column in ('vendors_total', 'shards_total', 'shards_done'):
            batch_op.alter_column(column, server_default=None)
    op.create_table(
        'payout_run_shards',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('run_id', sa.String(length=40), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('dues', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('payouts_created', sa.Integer(), nullable=False),
        sa.Column('total_amount', sa.BigInteger(), nullable=False),
        sa.Column('error', sa.String(length=500), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name=op.f('ck_payout_run_shards_status')),
        sa.ForeignKeyConstraint(['run_id'], ['payout_runs.id'], name=op.f('fk_payout_run_shards_run_id_payout_runs')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_payout_run_shards')),
    )
    op.create_index('ix_payout_run_shards_run_id_status', 'payout_run_shards', ['run_id', 'status'], unique=False)
    with op.batch_alter_table('payouts', schema=None) as batch_op:
        batch_op.drop_index('ix_payouts_run_id')
        batch_op.create_index('uq_payouts_run_vendor_currency', ['run_id', 'vendor_id', 'currency'], unique=True)


def downgrade():
    with op.batch_alter_table('payouts', schema=None) as batch_op:
        batch_op.drop_index('uq_payouts_run_vendor_currency')
        batch_op.create_index('ix_payouts_run_id', ['run_id'], unique=False)
    op.drop_index('ix_payout_run_shards_run_id_status', table_name='payout_run_shards')
    op.drop_table('payout_run_shards')
    with op.batch_alter_table('payout_runs', schema=None) as batch_op:
        for column in ('shards_done', 'shards_total', 'vendors_total', 'cutoff'):
            batch_op.drop_column(column)
