"""Many shoppers racing for the last units on PostgreSQL: no oversell, no deadlock."""
import threading

from sqlalchemy import select

from marketplace.auth.models import User
from marketplace.catalog.models import Product
from marketplace.errors import Conflict
from marketplace.extensions import db
from marketplace.orders import service
from marketplace.orders.models import Order
from tests.factories import ProductFactory, UserFactory


def race(app, user_ids, carts):
    """Each thread (own app context, own session) places one order at the same moment."""
    barrier = threading.Barrier(len(user_ids))
    outcomes, lock = [], threading.Lock()

    def shop(user_id, items):
        with app.app_context():
            try:
                user = db.session.get(User, user_id)
                barrier.wait(timeout=10)
                service.create_order(user, items)
                result = "ok"
            except Conflict as error:
                result = error.code
            except Exception as error:  # a deadlock or anything else fails the test below
                result = repr(error)
            finally:
                db.session.remove()
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=shop, args=args) for args in zip(user_ids, carts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


def stock(product_id):
    db.session.expire_all()
    return db.session.scalar(select(Product.stock).where(Product.id == product_id))


def test_twelve_shoppers_five_units(app, pg_only):
    product = ProductFactory(stock=5)
    users = [UserFactory().id for _ in range(12)]
    outcomes = race(app, users, [[{"product_id": product.id, "quantity": 1}]] * 12)
    assert sorted(outcomes) == ["insufficient_stock"] * 7 + ["ok"] * 5
    assert stock(product.id) == 0
    assert len(db.session.scalars(select(Order)).all()) == 5


def test_carts_naming_products_in_opposite_orders_do_not_deadlock(app, pg_only):
    a, b = ProductFactory(stock=6), ProductFactory(stock=6)
    forward = [{"product_id": a.id, "quantity": 1}, {"product_id": b.id, "quantity": 1}]
    users = [UserFactory().id for _ in range(12)]
    outcomes = race(app, users, [forward if i % 2 else forward[::-1] for i in range(12)])
    assert sorted(outcomes) == ["insufficient_stock"] * 6 + ["ok"] * 6
    assert (stock(a.id), stock(b.id)) == (0, 0)
