"""movements of kind fee_collection: a reversal taking the part of a split's platform fee
that Stripe's application fee did not (a subscription's first invoice)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 21:50:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

BEFORE = ('transfer', 'transfer_reversal', 'retransfer', 'fee_refund', 'refund', 'payout')
AFTER = BEFORE + ('fee_collection',)


def _kinds(kinds):
    return "kind IN (" + ", ".join(f"'{kind}'" for kind in kinds) + ")"


def upgrade():
    with op.batch_alter_table('movements', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_movements_kind'), type_='check')
        batch_op.create_check_constraint('kind', _kinds(AFTER))


def downgrade():
    with op.batch_alter_table('movements', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_movements_kind'), type_='check')
        batch_op.create_check_constraint('kind', _kinds(BEFORE))
