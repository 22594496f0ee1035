"""`flask demo` runs the whole tour end to end and reconciles to zero discrepancies."""
import re

from marketplace.demo.command import demo_command


def test_demo_runs_end_to_end(app):
    result = app.test_cli_runner().invoke(demo_command)
    assert result.exit_code == 0, result.output
    assert "FAILED" not in result.output
    assert "7 paid orders" in result.output
    assert "paid a three-vendor order without naming it" in result.output
    assert "paid on Stripe Checkout" in result.output
    assert "subscription to a monthly box: first invoice and one renewal paid" in result.output
    assert re.search(r"payout run: 3 payouts, \d+ in total", result.output)
    counts = re.search(r"reconciliation: 4 accounts, matched (\d+), missing_in_ledger (\d+), "
                       r"missing_in_stripe (\d+), amount_mismatch (\d+)", result.output)
    assert counts, result.output
    matched, *discrepancies = map(int, counts.groups())
    assert matched > 0 and discrepancies == [0, 0, 0]
