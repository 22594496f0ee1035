"""movements: every Stripe call that moves money after the charge, as a durable row;
refunds: Stripe's status, and no admin for a refund made in Stripe's Dashboard;
outbox: a row is done when its job finished

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 08:00:00

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

OPEN = "status IN ('planned', 'sent', 'unknown')"


def upgrade():
    op.create_table(
        'movements',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('kind', sa.String(length=24), nullable=False),
        sa.Column('status', sa.String(length=24), nullable=False),
        sa.Column('amount', sa.BigInteger(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('stripe_account', sa.String(length=255), nullable=True),
        sa.Column('destination', sa.String(length=255), nullable=True),
        sa.Column('source_id', sa.String(length=255), nullable=True),
        sa.Column('source_movement_id', sa.String(length=40), nullable=True),
        sa.Column('after_id', sa.String(length=40), nullable=True),
        sa.Column('params', sa.JSON(), nullable=False),
        sa.Column('stripe_id', sa.String(length=255), nullable=True),
        sa.Column('key_generation', sa.Integer(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('first_sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('vendor_id', sa.String(length=40), nullable=True),
        sa.Column('order_id', sa.String(length=40), nullable=True),
        sa.Column('split_id', sa.String(length=40), nullable=True),
        sa.Column('refund_id', sa.String(length=40), nullable=True),
        sa.Column('allocation_id', sa.String(length=40), nullable=True),
        sa.Column('dispute_id', sa.String(length=40), nullable=True),
        sa.Column('recovery_id', sa.String(length=40), nullable=True),
        sa.Column('payout_id', sa.String(length=40), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('transfer', 'transfer_reversal', 'retransfer', 'fee_refund', 'refund', 'payout')",
                           name=op.f('ck_movements_kind')),
        sa.CheckConstraint("status IN ('planned', 'sent', 'succeeded', 'failed', 'unknown', 'needs_attention')",
                           name=op.f('ck_movements_status')),
        sa.CheckConstraint('amount > 0', name=op.f('ck_movements_amount_positive')),
        sa.ForeignKeyConstraint(['source_movement_id'], ['movements.id'],
                                name=op.f('fk_movements_source_movement_id_movements')),
        sa.ForeignKeyConstraint(['after_id'], ['movements.id'], name=op.f('fk_movements_after_id_movements')),
        sa.ForeignKeyConstraint(['vendor_id'], ['vendors.id'], name=op.f('fk_movements_vendor_id_vendors')),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_movements_order_id_orders')),
        sa.ForeignKeyConstraint(['split_id'], ['order_splits.id'], name=op.f('fk_movements_split_id_order_splits')),
        sa.ForeignKeyConstraint(['refund_id'], ['refunds.id'], name=op.f('fk_movements_refund_id_refunds')),
        sa.ForeignKeyConstraint(['allocation_id'], ['refund_allocations.id'],
                                name=op.f('fk_movements_allocation_id_refund_allocations')),
        sa.ForeignKeyConstraint(['dispute_id'], ['disputes.id'], name=op.f('fk_movements_dispute_id_disputes')),
        sa.ForeignKeyConstraint(['recovery_id'], ['dispute_recoveries.id'],
                                name=op.f('fk_movements_recovery_id_dispute_recoveries')),
        sa.ForeignKeyConstraint(['payout_id'], ['payouts.id'], name=op.f('fk_movements_payout_id_payouts')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_movements')),
        sa.UniqueConstraint('stripe_id', name=op.f('uq_movements_stripe_id')),
    )
    for column in ('source_movement_id', 'after_id', 'vendor_id', 'order_id', 'split_id', 'refund_id',
                   'dispute_id', 'payout_id'):
        op.create_index(op.f(f'ix_movements_{column}'), 'movements', [column], unique=False)
    op.create_index('ix_movements_due', 'movements', ['next_attempt_at'], unique=False,
                    postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN))
    op.create_index('ix_movements_status_created_at', 'movements', ['status', 'created_at'], unique=False)
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stripe_status', sa.String(length=24), nullable=True))
        batch_op.alter_column('created_by', existing_type=sa.String(length=40), nullable=True)
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('done_at', sa.DateTime(timezone=True), nullable=True))
    # Rows handed off before this revision are taken as done (their jobs ran, or the
    # periodic relays of before would not have retried them either).
    op.execute("UPDATE outbox_messages SET done_at = dispatched_at WHERE dispatched_at IS NOT NULL")
    unfinished = "dispatched_at IS NOT NULL AND done_at IS NULL AND dead_at IS NULL"
    op.create_index('ix_outbox_messages_unfinished', 'outbox_messages', ['dispatched_at'], unique=False,
                    postgresql_where=sa.text(unfinished), sqlite_where=sa.text(unfinished))


def downgrade():
    op.drop_index('ix_outbox_messages_unfinished', table_name='outbox_messages')
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_column('done_at')
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.alter_column('created_by', existing_type=sa.String(length=40), nullable=False)
        batch_op.drop_column('stripe_status')
    op.drop_table('movements')
