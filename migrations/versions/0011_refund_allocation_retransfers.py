"""refund allocations: the retransfer after a failed refund, and the reversal of it by a later refund

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-22 03:00:00

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('refund_allocations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stripe_retransfer_id', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('stripe_shortfall_reversal_id', sa.String(length=255), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_refund_allocations_stripe_retransfer_id'),
                                          ['stripe_retransfer_id'])
        batch_op.create_unique_constraint(batch_op.f('uq_refund_allocations_stripe_shortfall_reversal_id'),
                                          ['stripe_shortfall_reversal_id'])


def downgrade():
    with op.batch_alter_table('refund_allocations', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_refund_allocations_stripe_shortfall_reversal_id'), type_='unique')
        batch_op.drop_constraint(batch_op.f('uq_refund_allocations_stripe_retransfer_id'), type_='unique')
        batch_op.drop_column('stripe_shortfall_reversal_id')
        batch_op.drop_column('stripe_retransfer_id')
