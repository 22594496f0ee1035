"""shoppers' wallets (a Stripe Customer per shopper, saved cards), Checkout Sessions, and
the card and receipt of a payment

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 12:41:25.409301

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('customers',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('user_id', sa.String(length=40), nullable=False),
    sa.Column('stripe_customer_id', sa.String(length=255), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('default_payment_method_id', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_customers_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customers')),
    sa.UniqueConstraint('stripe_customer_id', name=op.f('uq_customers_stripe_customer_id')),
    sa.UniqueConstraint('user_id', name=op.f('uq_customers_user_id'))
    )
    op.create_table('checkout_sessions',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('order_id', sa.String(length=40), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('stripe_session_id', sa.String(length=255), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('payment_intent_id', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('open', 'complete', 'expired')", name=op.f('ck_checkout_sessions_status')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_checkout_sessions_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkout_sessions')),
    sa.UniqueConstraint('stripe_session_id', name=op.f('uq_checkout_sessions_stripe_session_id'))
    )
    with op.batch_alter_table('checkout_sessions', schema=None) as batch_op:
        batch_op.create_index('ix_checkout_sessions_order_id_status', ['order_id', 'status'], unique=False)

    op.create_table('saved_payment_methods',
    sa.Column('stripe_payment_method_id', sa.String(length=255), nullable=False),
    sa.Column('user_id', sa.String(length=40), nullable=False),
    sa.Column('customer_id', sa.String(length=40), nullable=False),
    sa.Column('brand', sa.String(length=32), nullable=True),
    sa.Column('last4', sa.String(length=4), nullable=True),
    sa.Column('exp_month', sa.Integer(), nullable=True),
    sa.Column('exp_year', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_saved_payment_methods_customer_id_customers')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_saved_payment_methods_user_id_users')),
    sa.PrimaryKeyConstraint('stripe_payment_method_id', name=op.f('pk_saved_payment_methods'))
    )
    with op.batch_alter_table('saved_payment_methods', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_saved_payment_methods_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('card_brand', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('card_last4', sa.String(length=4), nullable=True))
        batch_op.add_column(sa.Column('receipt_url', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('stripe_customer_id', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('checkout_session_id', sa.String(length=255), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_payments_checkout_session_id'), ['checkout_session_id'])



def downgrade():
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_payments_checkout_session_id'), type_='unique')
        batch_op.drop_column('checkout_session_id')
        batch_op.drop_column('stripe_customer_id')
        batch_op.drop_column('receipt_url')
        batch_op.drop_column('card_last4')
        batch_op.drop_column('card_brand')

    with op.batch_alter_table('saved_payment_methods', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_saved_payment_methods_user_id'))

    op.drop_table('saved_payment_methods')
    with op.batch_alter_table('checkout_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_checkout_sessions_order_id_status')

    op.drop_table('checkout_sessions')
    op.drop_table('customers')
