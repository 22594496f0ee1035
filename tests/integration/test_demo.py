"""`flask demo` runs the tour end to end and prints its report."""
from marketplace.demo.command import demo_command


def test_demo_runs_end_to_end(app):
    result = app.test_cli_runner().invoke(demo_command)
    assert result.exit_code == 0, result.output
    assert "FAILED" not in result.output
    assert "Demo run" in result.output
    assert result.output.count("acct_") == 3  # three onboarded vendors with Stripe accounts
