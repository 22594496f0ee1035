"""the payouts export reads payouts in keyset chunks by (created_at, id)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 19:05:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_payouts_created_at_id', 'payouts', ['created_at', 'id'], unique=False)


def downgrade():
    op.drop_index('ix_payouts_created_at_id', table_name='payouts')
