"""Login links (`POST /v1/accounts/{id}/login_links`): Express Dashboard links, refused as Stripe
refuses them. Each test runs against the emulator and, unless marked, Stripe's test mode."""
import pytest
import requests
import stripe

EXPRESS = {"type": "express", "country": "US", "email": "vendor@example.com",
           "capabilities": {"card_payments": {"requested": True}, "transfers": {"requested": True}}}


def _refusal(client, account_id) -> stripe.InvalidRequestError:
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.accounts.login_links.create(account_id)
    assert err.value.http_status == 400 and err.value.error.type == "invalid_request_error"
    return err.value


def test_an_account_without_the_express_dashboard_is_refused(client):
    custom = client.v1.accounts.create(params={"type": "custom", "country": "US",
                                               "capabilities": {"transfers": {"requested": True}}})
    error = _refusal(client, custom.id)
    assert error.user_message == (f"Cannot create an edit link for the account {custom.id}, which does not "
                                  "have access to the Express Dashboard.")
    assert error.param is None


def test_an_express_account_that_has_not_completed_onboarding_is_refused(client):
    account = client.v1.accounts.create(params=EXPRESS)
    error = _refusal(client, account.id)
    assert error.user_message == "Cannot create a login link for an account that has not completed onboarding."
    assert error.param is None


@pytest.mark.emulator_only  # an Express account is only onboarded by a person on Stripe
def test_an_onboarded_express_account_gets_a_single_use_link(client, vendor, target):
    link = client.v1.accounts.login_links.create(vendor)
    assert link.object == "login_link" and isinstance(link.created, int)
    assert link.url.startswith(f"{target.url}/_emulator/express/{vendor}/")
    opened = requests.get(link.url, timeout=10)
    assert opened.status_code == 200 and opened.json() == {"object": "express_dashboard", "account": vendor}
    again = requests.get(link.url, timeout=10)
    assert again.status_code == 404 and again.json()["error"]["code"] == "resource_missing"
    other = client.v1.accounts.login_links.create(vendor)
    assert other.url != link.url and requests.get(other.url, timeout=10).status_code == 200


@pytest.mark.emulator_only
def test_a_link_takes_no_parameters_and_needs_a_connected_account(client, vendor):
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.accounts.login_links.create(vendor, params={"redirect_url": "https://x.example"})
    assert err.value.code == "parameter_unknown"
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.accounts.login_links.create("acct_nothere")
    assert missing.value.http_status == 404
