"""Issue 10's relay caps, measured where the relay would see them: arrival times at a real SMTP
server (aiosmtpd). Per-domain caps pace only their domain; the outbox (transactional mail) is
under the same deployment-wide cap as digests."""

from __future__ import annotations

import time

from newsletter.delivery.digest_runs import run_digest
from newsletter.delivery.outbox import queue_message
from newsletter.domain.digests import create_digest
from newsletter.extensions import db
from tests.support.digests import add_release, add_subscribers

SLOW_DOMAIN = "slow.example"


def start_digest(language: str = "en") -> int:
    digest = create_digest({"language": language})
    db.session.commit()
    assert run_digest(digest.id).result == "sending"
    return digest.id


def arrivals(messages, domain: str) -> list[float]:
    return sorted(m.received_at for m in messages if m.to.casefold().endswith("@" + domain))


def most_in_any_window(times: list[float], seconds: float) -> int:
    """The largest number of ``times`` that fall within any window of ``seconds``."""
    return max(
        sum(1 for other in times[index:] if other - first < seconds)
        for index, first in enumerate(times)
    )


def test_a_domain_cap_paces_that_domain_while_other_domains_go_at_full_speed(
    app, mailbox, run_worker
):
    """15 subscribers at a domain capped at 5/s, interleaved with 60 elsewhere (one slow
    address, then four others, in claim order)."""
    app.config["SEND_DOMAIN_RATES"] = f"{SLOW_DOMAIN}=5"
    with app.app_context():
        for index in range(15):
            add_subscribers(1, language="en", prefix=f"slow-{index}", domain=SLOW_DOMAIN)
            add_subscribers(4, language="en", prefix=f"fast-{index}", domain="example.org")
        add_release(language="en")
        start_digest()
    run_worker()
    messages = mailbox.wait_for(75)
    slow, fast = arrivals(messages, SLOW_DOMAIN), arrivals(messages, "example.org")
    assert (len(slow), len(fast)) == (15, 60)
    # The moving window lets 5 through at once, then 5 more each second: 15 need 2 s at least.
    assert slow[-1] - slow[0] >= 1.8, f"slow domain sent in {slow[-1] - slow[0]:.2f}s"
    assert most_in_any_window(slow, 0.9) <= 5
    # ...and it is used: not starved either (generous: a loaded machine sends slower).
    assert slow[-1] - slow[0] <= 6
    # Everyone else is not held behind the slow domain: their 60 are out before the slow
    # domain's last second starts (unpaced, 60 messages take a fraction of a second).
    assert fast[-1] < slow[-1] - 0.8, (
        f"other domains finished {fast[-1] - slow[-1]:+.2f}s after the slow one"
    )


def test_the_outbox_obeys_the_send_cap(app, mailbox, run_worker):
    """Transactional mail (confirmations, codes) goes to the same relay as digests."""
    app.config["SEND_MAX_RATE"] = 20
    with app.app_context():
        for index in range(11):
            queue_message("confirm", f"account-{index}@example.org", b"Subject: code\r\n\r\n1\r\n")
        db.session.commit()
    started = time.monotonic()
    run_worker()
    elapsed = time.monotonic() - started
    received = sorted(m.received_at for m in mailbox.wait_for(11))
    assert len(received) == 11
    # 11 messages at 20/s: at least 10 intervals of 50 ms, at the server too.
    assert received[-1] - received[0] >= 0.45
    assert elapsed >= 0.45


def test_the_outbox_and_digests_share_one_cap(app, mailbox, run_worker):
    """Digest deliveries and outbox mail in one worker pass: together, still 20/s."""
    app.config["SEND_MAX_RATE"] = 20
    with app.app_context():
        add_subscribers(10, language="en")
        add_release(language="en")
        start_digest()
        for index in range(10):
            queue_message("confirm", f"account-{index}@example.org", b"Subject: code\r\n\r\n1\r\n")
        db.session.commit()
    run_worker()
    received = sorted(m.received_at for m in mailbox.wait_for(20))
    assert len(received) == 20
    # 20 messages at 20/s, digests and outbox alike: at least 19 intervals of 50 ms.
    assert received[-1] - received[0] >= 0.9
