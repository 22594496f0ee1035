"""indexes for the admin search: amounts (newest first) of orders, payments, refunds and
payouts, and vendors' contact emails in any case

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 19:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

AMOUNTS = (
    ('ix_orders_total_created_at', 'orders', 'total'),
    ('ix_payments_amount_created_at', 'payments', 'amount'),
    ('ix_refunds_amount_created_at', 'refunds', 'amount'),
    ('ix_payouts_amount_created_at', 'payouts', 'amount'),
)


def upgrade():
    for name, table, column in AMOUNTS:
        op.create_index(name, table, [column, 'created_at'], unique=False)
    op.create_index('ix_vendors_lower_email', 'vendors', [sa.text('lower(email)')], unique=False)


def downgrade():
    op.drop_index('ix_vendors_lower_email', table_name='vendors')
    for name, table, _ in reversed(AMOUNTS):
        op.drop_index(name, table_name=table)
