"""Helpers for the sending tests (test_sending, test_send_rate, test_exactly_once,
test_delivery_faults): a digest started for a list of subscribers, rates measured from arrival
times at the SMTP server, and how many messages each worker process sent."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from newsletter.delivery.digest_runs import run_digest
from newsletter.domain.digests import create_digest
from newsletter.extensions import db
from newsletter.models import DigestStatus
from tests.support.digests import (
    WorkerProcess,
    add_release,
    add_subscribers,
    digest_row,
    wait_until,
)

SUMMARY_SENT = " digest messages sent"


def new_digest(language: str = "en", **values) -> int:
    """A digest due now (or at ``send_at`` in ``values``), not started."""
    digest = create_digest({"language": language, **values})
    db.session.commit()
    return digest.id


def start_digest(language: str = "en", **values) -> int:
    """A digest due now, started at once (composed and fanned out)."""
    digest_id = new_digest(language, **values)
    outcome = run_digest(digest_id)
    assert outcome.result == "sending", outcome
    return digest_id


def digest_to(count: int, language: str = "en", **subscriber_options) -> tuple[list[str], int]:
    """``count`` confirmed subscribers of ``language``, a release, and a digest to them started:
    (their addresses, the digest's id). In an app context."""
    addresses = add_subscribers(count, language=language, **subscriber_options)
    add_release(language=language)
    return addresses, start_digest(language)


def wait_sent(app, digest_id: int, timeout: float) -> None:
    """Wait until ``digest_id`` is marked sent (a worker process is sending it)."""
    with app.app_context():
        wait_until(
            lambda: digest_row(digest_id).status == DigestStatus.SENT,
            timeout=timeout,
            message=f"digest {digest_id} sent",
        )
        db.session.remove()


def arrival_times(messages, domain: str | None = None) -> list[float]:
    """When each message (to ``domain`` only, if given) reached the SMTP server, in order."""
    return sorted(
        m.received_at
        for m in messages
        if domain is None or m.to.casefold().endswith("@" + domain)
    )


def measured_rate(times: list[float]) -> float:
    """Messages a second between the first arrival and the last."""
    return (len(times) - 1) / (times[-1] - times[0])


def assert_paced(times: list[float], cap: float) -> None:
    """Arrivals paced at ``cap`` a second, as the relay sees them: never faster (11 messages at
    20/s take 10 intervals of 50 ms, a tenth off for arrival jitter), and the cap used, not
    starved (generous: a loaded machine sends slower)."""
    span = times[-1] - times[0]
    assert span >= 0.9 * (len(times) - 1) / cap, f"{len(times)} messages in {span:.3f}s"
    assert measured_rate(times) <= cap * 1.15
    assert measured_rate(times) >= cap / 4, f"{measured_rate(times):.1f}/s against {cap}/s"


def most_in_any_window(times: list[float], seconds: float) -> int:
    """The largest number of ``times`` that fall within any window of ``seconds``."""
    return max(
        sum(1 for other in times[index:] if other - first < seconds)
        for index, first in enumerate(times)
    )


def sent_in_summary(worker: WorkerProcess) -> int:
    """Digest messages an ``--until-idle`` worker says it sent (its last summary line)."""
    line = [ln for ln in worker.log().splitlines() if SUMMARY_SENT in ln][-1]
    return int(line.split(SUMMARY_SENT)[0].rsplit(", ", 1)[1])


def sent_per_metrics(port: int) -> int:
    """Digest messages a running worker has had accepted, read from its own metrics port."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return int(
        sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "newsletter_messages_sent_total"
            and sample.labels.get("stream") == "newsletter"
        )
    )
