"""Stripe requests' parameters fixed before they are first sent; checkout sessions whose
delayed payment failed; the cards a Customer had removed (part of an attach's key)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 19:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('stripe_requests',
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('idempotency_key', name=op.f('pk_stripe_requests'))
    )
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('removed_payment_methods', sa.Integer(), server_default='0', nullable=False))

    with op.batch_alter_table('checkout_sessions', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_checkout_sessions_status'), type_='check')
        batch_op.create_check_constraint(
            'status', "status IN ('open', 'complete', 'expired', 'failed')")


def downgrade():
    with op.batch_alter_table('checkout_sessions', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_checkout_sessions_status'), type_='check')
        batch_op.create_check_constraint('status', "status IN ('open', 'complete', 'expired')")

    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_column('removed_payment_methods')

    op.drop_table('stripe_requests')
