"""Issue 10's relay caps, measured where the relay would see them: arrival times at a real SMTP
server (aiosmtpd). Per-domain caps pace only their domain; the outbox (transactional mail) is
under the same deployment-wide cap as digests."""

from __future__ import annotations

import secrets
import threading

import pytest

from newsletter.delivery.outbox import deliver_outbox_batch, queue_message
from newsletter.delivery.send_rate import send_rate_limiter
from newsletter.delivery.sending_pool import DigestSendingPool
from newsletter.delivery.streams import StreamTransports
from newsletter.extensions import db
from tests.support.digests import add_release, add_subscribers
from tests.support.sending import (
    arrival_times,
    assert_paced,
    digest_to,
    most_in_any_window,
    start_digest,
)

SLOW_DOMAIN = "slow.example"
CODE = b"Subject: code\r\n\r\n1\r\n"


def queue_codes(count: int) -> None:
    """``count`` account emails in the outbox (confirmations, codes), committed."""
    for index in range(count):
        queue_message("confirm", f"account-{index}@example.org", CODE)
    db.session.commit()


def test_a_domain_cap_paces_that_domain_while_other_domains_go_at_full_speed(
    app, mailbox, run_worker
):
    """10 subscribers at a domain capped at 2/s, interleaved with 40 elsewhere (one capped
    address, then four others, in claim order)."""
    app.config["SEND_DOMAIN_RATES"] = f"{SLOW_DOMAIN}=2"
    with app.app_context():
        for index in range(10):
            add_subscribers(1, language="en", prefix=f"slow-{index}", domain=SLOW_DOMAIN)
            add_subscribers(4, language="en", prefix=f"fast-{index}", domain="example.org")
        add_release(language="en")
        start_digest()
    run_worker()
    messages = mailbox.wait_for(50)
    slow, fast = arrival_times(messages, SLOW_DOMAIN), arrival_times(messages, "example.org")
    assert (len(slow), len(fast)) == (10, 40)
    # The moving window lets 2 through at once, then 2 more each second: 10 need 4 s at least.
    assert slow[-1] - slow[0] >= 3.6, f"capped domain sent in {slow[-1] - slow[0]:.2f}s"
    assert most_in_any_window(slow, 0.9) <= 2
    # ...and the cap is used, not starved (generous: a loaded machine sends slower).
    assert slow[-1] - slow[0] <= 10
    # Everyone else is not held behind the capped domain: their 40 (unpaced, a fraction of a
    # second of work) are out long before its last message.
    assert fast[-1] < slow[-1] - 2.0, (
        f"other domains finished {fast[-1] - slow[-1]:+.2f}s after the capped one"
    )


@pytest.mark.parametrize("mail", ["digest", "outbox"])
def test_the_sending_rate_is_capped(app, mailbox, run_worker, mail):
    """Digests and transactional mail (confirmations, codes) alike, measured where the relay
    sees them: arrival times at the server, not the worker's run (whose start-up would count
    as sending time)."""
    app.config["SEND_MAX_RATE"] = 20
    with app.app_context():
        if mail == "digest":
            digest_to(11)
        else:
            queue_codes(11)
    run_worker()
    received = arrival_times(mailbox.wait_for(11))
    assert len(received) == 11
    assert_paced(received, 20)  # 11 at 20/s: 0.45 s at least, at most 23/s, at least 5/s


def test_the_outbox_and_digests_share_one_cap(app, mailbox, run_worker):
    """Digest deliveries and outbox mail in one worker pass: together, still 20/s."""
    app.config["SEND_MAX_RATE"] = 20
    with app.app_context():
        digest_to(10)
        queue_codes(10)
    run_worker()
    received = arrival_times(mailbox.wait_for(20))
    assert len(received) == 20
    # 20 messages at 20/s, digests and outbox alike: at least 19 intervals of 50 ms.
    assert received[-1] - received[0] >= 0.9


def test_the_outbox_and_digests_of_two_senders_share_one_cap_through_redis(
    app, make_app, mailbox, redis_url
):
    """One sender (its own app, limiter and pacer, as another process would have) drains the
    outbox while another sends a digest; only the Redis window links them."""
    cap, each = 20, 30
    settings = {
        "SEND_MAX_RATE": cap,
        "SEND_RATE_STORAGE_URI": redis_url,
        "SEND_RATE_NAMESPACE": f"nl-test-{secrets.token_hex(4)}",
    }
    outbox_app, digest_app = make_app(**settings), make_app(**settings)
    with app.app_context():
        digest_to(each)
        queue_codes(each)

    def drain_outbox() -> None:
        with outbox_app.app_context():
            transport = StreamTransports()
            limiter = send_rate_limiter(outbox_app)
            try:
                while deliver_outbox_batch(transport, limit=10, limiter=limiter):
                    pass
            finally:
                transport.close()
                db.session.remove()

    outbox_sender = threading.Thread(target=drain_outbox)
    outbox_sender.start()
    DigestSendingPool(digest_app).run_until_idle()
    outbox_sender.join(60)
    messages = sorted(mailbox.wait_for(2 * each), key=lambda message: message.received_at)
    assert len(messages) == 2 * each
    outbox = [m for m in messages if m.to.startswith("account-")]
    assert len(outbox) == each
    times = [m.received_at for m in messages]
    # A moving window: never more than the cap in any second (0.1 s left for arrival jitter),
    # so 60 messages need 2 s at least (the first second's 20 may go at once).
    busiest = most_in_any_window(times, 0.9)
    assert busiest <= cap, f"{busiest} messages within 0.9 s against a shared cap of {cap}/s"
    assert times[-1] - times[0] >= 1.8
    # Both kinds went out in the same seconds: the outbox was not simply run after digests.
    assert outbox[0].received_at < messages[-1].received_at - 0.5
