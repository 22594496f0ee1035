"""vendors' recurring products and shoppers' subscriptions to them; an order per paid invoice

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 19:15:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

LIVE_WHERE = "status IN ('creating', 'incomplete', 'active', 'past_due', 'unpaid')"


def upgrade():
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recurring_interval', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('recurring_interval_count', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('stripe_product_id', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('stripe_price_id', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('stripe_price_terms', sa.String(length=64), nullable=True))
        batch_op.create_check_constraint(
            'recurring', "recurring_interval IS NULL OR (recurring_interval IN ('month', 'year') "
                         "AND recurring_interval_count BETWEEN 1 AND 12)")

    op.create_table('subscriptions',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('shopper_id', sa.String(length=40), nullable=False),
    sa.Column('vendor_id', sa.String(length=40), nullable=False),
    sa.Column('product_id', sa.String(length=40), nullable=False),
    sa.Column('stripe_subscription_id', sa.String(length=255), nullable=True),
    sa.Column('stripe_price_id', sa.String(length=255), nullable=False),
    sa.Column('price', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('interval', sa.String(length=8), nullable=False),
    sa.Column('interval_count', sa.Integer(), nullable=False),
    sa.Column('fee_percent_bps', sa.Integer(), nullable=False),
    sa.Column('fee_fixed', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('current_period_end', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancel_at_period_end', sa.Boolean(), nullable=False),
    sa.Column('latest_invoice_id', sa.String(length=255), nullable=True),
    sa.Column('latest_invoice_status', sa.String(length=16), nullable=True),
    sa.Column('latest_invoice_amount_paid', sa.BigInteger(), nullable=True),
    sa.Column('canceled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("interval IN ('month', 'year')", name=op.f('ck_subscriptions_interval')),
    sa.CheckConstraint("status IN ('creating', 'incomplete', 'active', 'past_due', 'unpaid', 'canceled', 'incomplete_expired')",
                       name=op.f('ck_subscriptions_status')),
    sa.CheckConstraint('price > 0', name=op.f('ck_subscriptions_price_positive')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_subscriptions_product_id_products')),
    sa.ForeignKeyConstraint(['shopper_id'], ['users.id'], name=op.f('fk_subscriptions_shopper_id_users')),
    sa.ForeignKeyConstraint(['vendor_id'], ['vendors.id'], name=op.f('fk_subscriptions_vendor_id_vendors')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscriptions')),
    sa.UniqueConstraint('stripe_subscription_id', name=op.f('uq_subscriptions_stripe_subscription_id'))
    )
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.create_index('ix_subscriptions_shopper_id_created_at', ['shopper_id', 'created_at'], unique=False)
        batch_op.create_index('ix_subscriptions_vendor_id_status', ['vendor_id', 'status'], unique=False)
        batch_op.create_index('uq_subscriptions_live', ['shopper_id', 'product_id'], unique=True,
                              postgresql_where=sa.text(LIVE_WHERE), sqlite_where=sa.text(LIVE_WHERE))

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('subscription_id', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('stripe_invoice_id', sa.String(length=255), nullable=True))
        batch_op.create_index(batch_op.f('ix_orders_subscription_id'), ['subscription_id'], unique=False)
        batch_op.create_unique_constraint(batch_op.f('uq_orders_stripe_invoice_id'), ['stripe_invoice_id'])
        batch_op.create_foreign_key(batch_op.f('fk_orders_subscription_id_subscriptions'), 'subscriptions',
                                    ['subscription_id'], ['id'])


def downgrade():
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_orders_subscription_id_subscriptions'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_orders_stripe_invoice_id'), type_='unique')
        batch_op.drop_index(batch_op.f('ix_orders_subscription_id'))
        batch_op.drop_column('stripe_invoice_id')
        batch_op.drop_column('subscription_id')

    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_index('uq_subscriptions_live')
        batch_op.drop_index('ix_subscriptions_vendor_id_status')
        batch_op.drop_index('ix_subscriptions_shopper_id_created_at')
    op.drop_table('subscriptions')

    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_products_recurring'), type_='check')
        batch_op.drop_column('stripe_price_terms')
        batch_op.drop_column('stripe_price_id')
        batch_op.drop_column('stripe_product_id')
        batch_op.drop_column('recurring_interval_count')
        batch_op.drop_column('recurring_interval')
