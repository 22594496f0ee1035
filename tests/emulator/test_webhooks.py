"""Signed webhook delivery: normal, duplicate, shuffle, paused + flush, retries, endpoints."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import stripe

from .helpers import opts, pay

SECRET = "whsec_test_secret"
pytestmark = pytest.mark.emulator_only  # the emulator's delivery to a local receiver
# one card payment: created, charge.succeeded, succeeded, then charge.updated (settled)
PAYMENT_EVENTS = 4


def _events(receiver):
    return [stripe.Webhook.construct_event(c["body"].decode(),
                                           c["headers"]["Stripe-Signature"], SECRET,
                                           tolerance=300)
            for c in receiver.ok()]


def test_deliveries_are_signed_and_complete(client, control, receiver, emu, vendor):
    pay(client, 1000, transfer_data={"destination": vendor}, application_fee_amount=100,
        key="hook-1")
    assert emu.webhooks.wait_idle(5)
    events = _events(receiver)
    types = [e.type for e in events]
    assert types[-6:] == ["payment_intent.created", "charge.succeeded",
                          "payment_intent.succeeded", "transfer.created",
                          "application_fee.created", "charge.updated"]
    onboarded = [e for e in events if e.type == "account.updated"]
    assert onboarded and onboarded[0].account == vendor
    succeeded = events[-4]
    assert succeeded.type == "payment_intent.succeeded"
    assert succeeded.data.object.latest_charge.startswith("ch_")
    assert succeeded.request.idempotency_key == "hook-1"
    assert succeeded.request.id.startswith("req_")
    assert succeeded.api_version and succeeded.livemode is False
    # t is wall-clock time even after the emulator clock moved on
    control.advance(10 * 86400)
    pay(client, 1000)
    assert emu.webhooks.wait_idle(5)
    header = receiver.ok()[-1]["headers"]["Stripe-Signature"]
    assert abs(int(header.split(",")[0][2:]) - time.time()) < 60
    last = _events(receiver)[-1]
    assert last.created >= time.time() + 9 * 86400
    stored = client.v1.events.retrieve(last.id)
    assert stored.type == last.type


def test_bad_signature_is_rejected(client, receiver, emu):
    pay(client, 1000)
    assert emu.webhooks.wait_idle(5)
    call = receiver.ok()[0]
    try:
        stripe.Webhook.construct_event(call["body"].decode(),
                                       call["headers"]["Stripe-Signature"], "whsec_other",
                                       tolerance=300)
    except stripe.SignatureVerificationError:
        pass
    else:
        raise AssertionError("a wrong secret must not verify")


def test_duplicate_mode(client, control, receiver, emu):
    control.post("webhooks", mode="duplicate")
    pay(client, 1000)
    assert emu.webhooks.wait_idle(5)
    ids = [e.id for e in _events(receiver)]
    assert len(ids) == 2 * PAYMENT_EVENTS and len(set(ids)) == PAYMENT_EVENTS
    assert all(ids.count(i) == 2 for i in ids)


def test_paused_then_flush_and_shuffle(client, control, receiver, emu):
    control.post("webhooks", mode="paused")
    for _ in range(5):
        pay(client, 1000)
    time.sleep(0.1)
    assert receiver.ok() == []
    assert control.get("webhooks")["pending"] == 5 * PAYMENT_EVENTS
    # shuffle: flushed at once in random order (20 events: one ordering in 20!)
    flushed = control.post("webhooks/flush", mode="shuffle")
    assert flushed["delivered"] == 5 * PAYMENT_EVENTS and flushed["pending"] == 0
    created = [e.created for e in _events(receiver)]
    ids = [e.id for e in _events(receiver)]
    listed = [e.id for e in reversed(client.v1.events.list(params={"limit": 100}).data)]
    assert sorted(ids) == sorted(listed) and ids != listed
    assert len(created) == 5 * PAYMENT_EVENTS
    pay(client, 1000)
    assert control.flush()["delivered"] == PAYMENT_EVENTS  # paused: flush delivers in order
    control.post("webhooks", mode="shuffle")
    pay(client, 1000)
    assert emu.webhooks.wait_idle(5)
    assert len(receiver.ok()) == 7 * PAYMENT_EVENTS


def test_retry_after_failure(client, receiver, emu):
    receiver.fail_next = 2
    pay(client, 1000)
    assert emu.webhooks.wait_idle(5)
    assert len(receiver.calls) == PAYMENT_EVENTS + 2  # the first two answers were 500
    assert sorted(e.type for e in _events(receiver)) == sorted(
        ["payment_intent.created", "charge.succeeded", "payment_intent.succeeded",
         "charge.updated"])
    failed_ids = {json.loads(c["body"])["id"] for c in receiver.calls if c["failed"]}
    assert failed_ids <= {e.id for e in _events(receiver)}
    assert client.v1.events.list().data[0].pending_webhooks == 0


class _Sink:
    """A second receiver for registered webhook endpoints."""

    def __init__(self):
        self.bodies = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                sink.bodies.append((self.rfile.read(int(self.headers["Content-Length"])),
                                    self.headers["Stripe-Signature"]))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_registered_endpoints(client, control, emu, vendor):
    platform_sink, connect_sink = _Sink(), _Sink()
    ep = client.v1.webhook_endpoints.create(params={
        "url": platform_sink.url, "enabled_events": ["charge.succeeded", "refund.created"]})
    assert ep.secret.startswith("whsec_")
    cep = client.v1.webhook_endpoints.create(params={
        "url": connect_sink.url, "enabled_events": ["*"], "connect": True})
    assert "secret" not in client.v1.webhook_endpoints.retrieve(ep.id)
    assert len(client.v1.webhook_endpoints.list().data) == 2
    pi = pay(client, 1000, transfer_data={"destination": vendor})
    client.v1.refunds.create(params={"payment_intent": pi.id})
    control.advance(2 * 86400)
    client.v1.payouts.create(params={"amount": 500, "currency": "usd"},
                             options=opts(vendor))
    assert emu.webhooks.wait_idle(5)
    got = [stripe.Webhook.construct_event(b.decode(), s, ep.secret, tolerance=300).type
           for b, s in platform_sink.bodies]
    assert got == ["charge.succeeded", "refund.created"]
    connect = [stripe.Webhook.construct_event(b.decode(), s, cep.secret, tolerance=300)
               for b, s in connect_sink.bodies]
    assert [e.type for e in connect] == ["balance.available", "payout.created"]
    assert {e.account for e in connect} == {vendor}
    deleted = client.v1.webhook_endpoints.delete(ep.id)
    assert deleted.deleted is True
    assert [e.id for e in client.v1.webhook_endpoints.list().data] == [cep.id]
    for sink in (platform_sink, connect_sink):
        sink.httpd.shutdown()


def test_events_list_filters(client, control):
    pay(client, 1000)
    first = client.v1.events.list().data
    control.advance(100)
    pay(client, 2000)
    later = client.v1.events.list(params={"created": {"gt": first[0].created}}).data
    assert len(later) == PAYMENT_EVENTS
    only = client.v1.events.list(params={"type": "payment_intent.succeeded"}).data
    assert [e.data.object.amount for e in only] == [2000, 1000]
    wild = client.v1.events.list(params={"type": "charge.*"}).data
    assert {e.type for e in wild} == {"charge.succeeded", "charge.updated"}
    paged = list(client.v1.events.list(params={"limit": 2}).auto_paging_iter())
    assert len(paged) == 2 * PAYMENT_EVENTS
