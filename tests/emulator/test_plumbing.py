"""Form decoding, the in-process server object, balance transaction filters and reset."""
import pytest
import requests

from stripe_emulator import create_app, start_server
from stripe_emulator.forms import decode
from stripe_emulator.money import processing_fee

from .helpers import opts, pay


def test_decode_nested_and_arrays():
    got = decode("a[b][c]=1&items[0][x]=2&items[1][x]=3&expand[]=p&expand[]=q"
                 "&metadata[k]=v&empty=&types[0]=charge.succeeded")
    assert got == {"a": {"b": {"c": "1"}}, "items": [{"x": "2"}, {"x": "3"}],
                   "expand": ["p", "q"], "metadata": {"k": "v"}, "empty": "",
                   "types": ["charge.succeeded"]}


def test_processing_fee_rounds_half_up():
    assert processing_fee(1000, "usd") == 59
    assert processing_fee(10000, "usd") == 320
    assert processing_fee(50, "usd") == 31  # 1.45 -> 1
    assert processing_fee(1050, "usd") == 60  # 30.45 -> 30, +30
    assert processing_fee(1724, "usd") == 80  # 49.996 -> 50, +30
    assert processing_fee(1000, "jpy") == 29


def test_a_held_clock_moves_only_when_advanced(monkeypatch):
    """Billing steps run with the clock held: a step taking real time past a second boundary
    still happens at its due time (an invoice made at a period's end is dated at it)."""
    from stripe_emulator import clock as clock_module

    wall = [1_800_000_000.9]
    monkeypatch.setattr(clock_module.time, "time", lambda: wall[0])
    clock = clock_module.Clock()
    with clock.held():
        start = clock.now()
        wall[0] += 5  # the steps take real time
        assert clock.now() == start
        assert clock.advance(3600) == start + 3600
        wall[0] += 1
        assert clock.now() == start + 3600
    assert clock.now() == int(wall[0]) + 3600  # real time counts again


def test_settling_runs_what_the_settled_steps_start_too():
    """A charge with a dispute test card settles, and its dispute opens, in one settle, even
    with no background thread to run what the settlement started (a loaded machine's case)."""
    import stripe

    server = start_server(deliver_in_background=False)
    try:
        client = stripe.StripeClient("sk_test_emulator", base_addresses={"api": server.url})
        intent = client.v1.payment_intents.create(params={
            "amount": 2000, "currency": "usd", "payment_method": "pm_card_createDispute", "confirm": True,
            "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"}})
        assert intent.status == "succeeded"
        assert requests.post(f"{server.url}/_emulator/settle", timeout=10).json()["ran"] >= 2
        disputes = client.v1.disputes.list().data
        assert [d.charge for d in disputes] == [intent.latest_charge]
    finally:
        server.stop()


def test_start_server_object():
    srv = start_server(port=0)
    try:
        assert srv.url.startswith("http://127.0.0.1:") and srv.state is srv.emulator
        resp = requests.get(srv.url + "/_emulator/clock")
        assert resp.json()["now"] == srv.emulator.now()
    finally:
        srv.stop()
    assert create_app().emu.platform_id.startswith("acct_")


def test_balance_transaction_filters_and_cursors(client, control, vendor):
    control.post("platform", settlement_currencies=["usd", "eur"])  # multi-currency settlement
    for amount in (1000, 2000, 3000):
        pay(client, amount)
    pay(client, 5000, currency="eur")
    everything = client.v1.balance_transactions.list(params={"limit": 100}).data
    assert len(everything) == 4
    charges = client.v1.balance_transactions.list(params={"type": "charge",
                                                          "currency": "usd"})
    assert [bt.amount for bt in charges.data] == [3000, 2000, 1000]
    page = client.v1.balance_transactions.list(params={"limit": 2})
    assert page.has_more and len(page.data) == 2
    nxt = client.v1.balance_transactions.list(params={
        "limit": 2, "starting_after": page.data[-1].id})
    assert not nxt.has_more and [bt.amount for bt in nxt.data] == [2000, 1000]
    src = client.v1.balance_transactions.list(params={"source": everything[0].source})
    assert [bt.id for bt in src.data] == [everything[0].id]
    control.advance(100)
    assert client.v1.balance_transactions.list(params={
        "created": {"gt": everything[0].created}}).data == []
    bal = client.v1.balance.retrieve()
    assert {b.currency for b in bal.pending} == {"usd", "eur"}
    assert client.v1.balance_transactions.list(options=opts(vendor)).data == []


def test_reset_forgets_everything(client, control, server):
    pay(client, 1000)
    control.post("reset")
    assert client.v1.payment_intents.list().data == []
    assert client.v1.events.list().data == []


def test_remaining_endpoints_validate(client, control, vendor):
    pi = pay(client, 1000, transfer_data={"destination": vendor}, application_fee_amount=50,
             transfer_group="g1")
    charge = client.v1.charges.update(pi.latest_charge, params={"metadata": {"x": "1"},
                                                                "description": "d"})
    assert charge.metadata["x"] == "1"
    assert [c.id for c in client.v1.charges.list(params={"payment_intent": pi.id}).data] \
        == [charge.id]
    assert [c.id for c in client.v1.charges.list(params={"transfer_group": "g1"}).data] \
        == [charge.id]
    refund = client.v1.refunds.create(params={"charge": charge.id, "amount": 100})
    refund = client.v1.refunds.update(refund.id, params={"metadata": {"why": "test"}})
    assert refund.metadata["why"] == "test"
    assert [r.id for r in client.v1.refunds.list(params={"charge": charge.id}).data] == [
        refund.id]
    assert [r.id for r in client.v1.refunds.list(params={"payment_intent": pi.id}).data] == [
        refund.id]
    transfer = client.v1.transfers.update(charge.transfer, params={"metadata": {"k": "v"}})
    assert transfer.metadata["k"] == "v"
    types = [e.type for e in client.v1.events.list().data]
    assert {"charge.updated", "refund.updated", "transfer.updated"} <= set(types)
    control.advance(3 * 86400)
    po = client.v1.payouts.create(params={"amount": 500, "currency": "usd"},
                                  options=opts(vendor))
    po = client.v1.payouts.update(po.id, params={"metadata": {"run": "7"}},
                                  options=opts(vendor))
    assert po.metadata["run"] == "7"
    ep = client.v1.webhook_endpoints.create(params={"url": "http://127.0.0.1:9/x",
                                                    "enabled_events": ["*"]})
    ep = client.v1.webhook_endpoints.update(ep.id, params={"disabled": True})
    assert ep.status == "disabled"
    assert client.v1.accounts.retrieve(vendor, options=opts(vendor)).id == vendor
    other = client.v1.accounts.create(params={"type": "custom", "country": "DE"})
    assert other.default_currency == "eur"
    assert client.v1.accounts.delete(other.id).deleted is True


@pytest.mark.emulator_only  # a fresh platform account
def test_parallel_requests_keep_balances_consistent(client, server, vendor):
    import threading

    from .helpers import check_balance_matches

    def worker():
        for _ in range(10):
            pay(client, 1000, transfer_data={"destination": vendor},
                application_fee_amount=100)
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bal = client.v1.balance.retrieve(options=opts(vendor))
    assert bal.pending[0].amount == 80 * 900
    assert client.v1.balance.retrieve().pending[0].amount == 80 * (1000 - 59 - 1000 + 100)
    check_balance_matches(client)
    check_balance_matches(client, vendor)


def test_api_requests_are_counted_by_route_until_cleared():
    srv = start_server(port=0)
    try:
        _count_requests(srv.url, {"Authorization": "Bearer sk_test_emulator"})
    finally:
        srv.stop()


def _count_requests(base, headers):
    for _ in range(2):
        requests.get(f"{base}/v1/balance", headers=headers, timeout=10).raise_for_status()
    account = requests.post(f"{base}/v1/accounts", data={"type": "express"}, headers=headers, timeout=10).json()
    requests.get(f"{base}/v1/accounts/{account['id']}", headers=headers, timeout=10).raise_for_status()
    requests.get(f"{base}/_emulator/clock", timeout=10).raise_for_status()  # controls are not API requests
    counted = requests.get(f"{base}/_emulator/requests", timeout=10).json()
    assert counted == {"total": 4, "rate_limited": 0, "data": [
        {"method": "GET", "path": "/v1/balance", "count": 2, "rate_limited": 0},
        {"method": "GET", "path": "/v1/accounts/<aid>", "count": 1, "rate_limited": 0},
        {"method": "POST", "path": "/v1/accounts", "count": 1, "rate_limited": 0},
    ]}
    requests.delete(f"{base}/_emulator/requests", timeout=10).raise_for_status()
    assert requests.get(f"{base}/_emulator/requests", timeout=10).json() == {
        "total": 0, "rate_limited": 0, "data": []}
