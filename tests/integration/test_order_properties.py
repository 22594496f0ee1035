"""Property: whatever the cart, fee policies and currency, an order built through the service keeps its invariants."""
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketplace import money
from marketplace.errors import ValidationFailed
from marketplace.orders import service
from marketplace.orders.schemas import OrderSchema
from tests.factories import ProductFactory, UserFactory, VendorFactory
from tests.integration.test_orders import assert_invariants

policy = st.one_of(st.none(), st.tuples(st.integers(0, 10_000), st.integers(0, 5_000)))
cart = st.fixed_dictionaries({
    "currency": st.sampled_from(["usd", "eur", "gbp", "jpy", "kwd"]),
    "policies": st.lists(policy, min_size=1, max_size=4),
    "lines": st.lists(
        st.tuples(st.integers(0, 3), st.integers(1, 200_000), st.integers(1, 1000)),
        min_size=1, max_size=12,
    ),
})


@given(cart)
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_orders_keep_their_invariants(app, example):
    shopper = UserFactory()
    vendors = [
        VendorFactory(fee_percent_bps=p and p[0], fee_fixed=p and p[1]) for p in example["policies"]
    ]
    items = []
    for vendor_index, price, quantity in example["lines"]:
        vendor = vendors[vendor_index % len(vendors)]
        if money.exponent(example["currency"]) == 3:
            price *= 10
        product = ProductFactory(vendor=vendor, price=price, currency=example["currency"], stock=quantity)
        items.append({"product_id": product.id, "quantity": quantity})
    try:
        order = service.create_order(shopper, items)
    except ValidationFailed as error:
        assert error.code in ("amount_too_small", "amount_too_large")
        return
    body = OrderSchema().dump(order)
    assert_invariants(body)
    assert len(body["items"]) == len(items)
    assert body["charge_type"] == ("destination" if len(body["splits"]) == 1 else "separate_transfers")
    for split in body["splits"]:
        expected = money.platform_fee(split["subtotal"], split["fee_policy"]["percent_bps"], split["fee_policy"]["fixed"])
        assert split["platform_fee"] == expected
