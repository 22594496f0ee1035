"""SUPPORTED_CURRENCIES and the onboarding URLs come from the environment with defaults."""
import pytest

import config as settings
from config import ConfigError


def test_defaults():
    config = settings.TestingConfig({})
    assert config.SUPPORTED_CURRENCIES == ("usd", "eur", "gbp", "jpy", "kwd")
    assert config.STRIPE_ONBOARDING_RETURN_URL.startswith("http")
    assert config.STRIPE_ONBOARDING_REFRESH_URL.startswith("http")


def test_currencies_are_lowercased_and_deduplicated():
    assert settings.TestingConfig({"SUPPORTED_CURRENCIES": " USD,eur , usd"}).SUPPORTED_CURRENCIES == ("usd", "eur")


@pytest.mark.parametrize("raw", ["dollars", "us", "usd,,e1r", ","])
def test_bad_currency_lists_are_refused(raw):
    with pytest.raises(ConfigError, match="SUPPORTED_CURRENCIES"):
        settings.TestingConfig({"SUPPORTED_CURRENCIES": raw})
