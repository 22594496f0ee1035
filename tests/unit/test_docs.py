"""The README says what a deployment must configure; it must say what the code needs."""
import pathlib
import re

from marketplace.webhooks.handlers import HANDLERS

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_names_every_event_the_webhook_endpoint_must_send():
    text = README.read_text()
    section = text.split("must send the\nevents the service handles:", 1)[1].split("Every currency", 1)[0]
    named = set(re.findall(r"`([a-z_]+(?:\.[a-z_]+)+)`", section))
    assert named == set(HANDLERS)
