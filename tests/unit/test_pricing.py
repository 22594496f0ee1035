"""orders.pricing: splits per vendor with frozen fees; the Order invariants as laws."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.errors import ValidationFailed
from marketplace.orders import pricing

VENDORS = ["ven_a", "ven_b", "ven_c", "ven_d"]

lines_strategy = st.lists(
    st.builds(
        pricing.Line,
        product_id=st.text("abcdef", min_size=1, max_size=4),
        vendor_id=st.sampled_from(VENDORS),
        name=st.just("thing"),
        unit_price=st.integers(1, 10**6),
        quantity=st.integers(1, 1000),
    ),
    min_size=1, max_size=30,
)
policies_strategy = st.fixed_dictionaries(
    {v: st.tuples(st.integers(0, 10_000), st.integers(0, 10**6)) for v in VENDORS}
)


@given(lines_strategy, policies_strategy)
@settings(max_examples=200)
def test_draft_invariants(lines, policies):
    draft = pricing.build_draft("usd", lines, policies)
    assert sum(line.amount for line in draft.lines) == draft.total
    assert sum(split.subtotal for split in draft.splits) == draft.total
    assert sum(split.platform_fee for split in draft.splits) == draft.platform_fee
    for split in draft.splits:
        assert split.platform_fee + split.vendor_net == split.subtotal
        assert 0 <= split.platform_fee <= split.subtotal
        assert (split.percent_bps, split.fixed) == policies[split.vendor_id]
    vendors = list(dict.fromkeys(line.vendor_id for line in lines))
    assert [s.vendor_id for s in draft.splits] == vendors
    assert draft.charge_type == ("destination" if len(vendors) == 1 else "separate_transfers")


def test_merge_lines_adds_repeats_and_keeps_the_first_position():
    items = [{"product_id": "b", "quantity": 1}, {"product_id": "a", "quantity": 2}, {"product_id": "b", "quantity": 3}]
    assert pricing.merge_lines(items) == [("b", 4, 0), ("a", 2, 1)]


@pytest.mark.parametrize("total, currency, code", [(49, "usd", "amount_too_small"), (29, "gbp", "amount_too_small"),
                                                   (49, "jpy", "amount_too_small"), (100_000_000, "usd", "amount_too_large")])
def test_check_total_outside_limits(total, currency, code):
    with pytest.raises(ValidationFailed) as raised:
        pricing.check_total(total, currency)
    assert raised.value.code == code and raised.value.status == 422


@pytest.mark.parametrize("total, currency", [(50, "usd"), (30, "gbp"), (50, "jpy"), (99_999_999, "eur")])
def test_check_total_at_the_limits(total, currency):
    pricing.check_total(total, currency)
