"""indexes for /metrics: payments, refunds and payouts summed by status and currency from
the index alone (marketplace/business_metrics.py)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 19:10:00

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

NOT_DRY_RUN = 'NOT dry_run'


def upgrade():
    op.create_index('ix_payments_status_currency_amount', 'payments', ['status', 'currency', 'amount'], unique=False)
    op.create_index('ix_refunds_status_currency_amount', 'refunds', ['status', 'currency', 'amount'], unique=False)
    op.create_index('ix_payouts_status_currency_amount', 'payouts', ['status', 'currency', 'amount'], unique=False,
                    postgresql_where=sa.text(NOT_DRY_RUN), sqlite_where=sa.text(NOT_DRY_RUN))


def downgrade():
    op.drop_index('ix_payouts_status_currency_amount', table_name='payouts')
    op.drop_index('ix_refunds_status_currency_amount', table_name='refunds')
    op.drop_index('ix_payments_status_currency_amount', table_name='payments')
