"""``/metrics`` and the worker's metrics port: Prometheus text that parses, counters that
match what the database recorded, a queue seen draining, and strangers kept out."""

from __future__ import annotations

import threading
import urllib.request
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from newsletter.config import STREAM_NEWSLETTER, STREAM_TRANSACTIONAL
from tests.conftest import free_port
from tests.support.digests import (
    digest_row,
    lease_holder,
    start_digest_to,
    wait_until,
)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape keyed by name and sorted labels (parsing is the first check)."""
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def value(scrape: dict, name: str, **labels: str) -> float:
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(client, **kwargs) -> dict:
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.status_code
    assert response.content_type.startswith("text/plain")
    return samples(response.get_data(as_text=True))


def test_metrics_parse_and_count_subscriptions_and_confirmations(app, client, mailbox, run_worker):
    before = scrape(client)
    assert value(before, "newsletter_database_up") == 1
    response = client.post(
        "/api/v1/subscriptions", json={"email": "metrics@example.org", "language": "fr"}
    )
    assert response.status_code == 202
    after_subscribe = scrape(client)
    assert value(after_subscribe, "newsletter_subscriptions_total") == (
        value(before, "newsletter_subscriptions_total") + 1
    )
    assert value(after_subscribe, "newsletter_subscribers", status="pending") == 1
    assert value(after_subscribe, "newsletter_outbox_messages", status="queued") == 1

    run_worker()
    [confirmation] = mailbox.wait_for(1)
    parts = urlsplit(confirmation.links()[0])
    client.get(parts.path)
    client.post(parts.path)  # whether GET or the page's button confirms, once is counted
    after = scrape(client)
    assert value(after, "newsletter_confirmations_total") == (
        value(before, "newsletter_confirmations_total") + 1
    )
    assert value(after, "newsletter_subscribers", status="confirmed") == 1
    assert value(after, "newsletter_messages_sent_total", stream="transactional") >= (
        value(before, "newsletter_messages_sent_total", stream="transactional") + 1
    )
    assert value(after, "newsletter_smtp_send_duration_seconds_count", stream="transactional") > (
        value(before, "newsletter_smtp_send_duration_seconds_count", stream="transactional")
    )


def test_every_metric_family_has_its_own_name_and_counters_end_in_total(
    app, client, mailbox, run_worker
):
    """The whole exposition, parsed: Prometheus reads ``x_total`` (counter) and ``x`` as one
    family, so a gauge beside a counter of the same stem makes the scrape invalid."""
    client.post("/api/v1/subscriptions", json={"email": "names@example.org", "language": "fr"})
    run_worker()
    mailbox.wait_for(1)
    text = client.get("/metrics").get_data(as_text=True)
    families = list(text_string_to_metric_families(text))
    names = [family.name for family in families]
    assert sorted({n for n in names if names.count(n) > 1}) == []
    untyped = [family.name for family in families if family.type in ("untyped", "unknown")]
    assert untyped == []  # a sample outside its declared family is parsed as untyped
    declared = [line.split()[2:4] for line in text.splitlines() if line.startswith("# TYPE ")]
    counters = [name for name, kind in declared if kind == "counter"]
    assert "newsletter_subscriptions_total" in counters
    assert [name for name in counters if not name.endswith("_total")] == []
    ours = {name for name in names if name.startswith("newsletter_")}
    assert {"newsletter_subscribers", "newsletter_deliveries", "newsletter_database_up"} <= ours


def test_stream_labels_are_the_mail_streams(app, client, mailbox, run_worker):
    """One vocabulary: the ``stream`` label says which mail stream (``delivery/streams.py``) a
    message travelled on, so the welcome (newsletter mail from the outbox) counts as
    newsletter and the confirmation as transactional."""
    before = scrape(client)
    client.post("/api/v1/subscriptions", json={"email": "streams@example.org", "language": "fr"})
    run_worker()
    [confirmation] = mailbox.wait_for(1)
    client.post(urlsplit(confirmation.links()[0]).path)
    run_worker()
    mailbox.wait_for(2)
    after = scrape(client)
    streams = {dict(labels)["stream"] for _name, labels in after if "stream" in dict(labels)}
    assert streams == {STREAM_TRANSACTIONAL, STREAM_NEWSLETTER}
    for stream in (STREAM_TRANSACTIONAL, STREAM_NEWSLETTER):
        sent = "newsletter_messages_sent_total"
        assert value(after, sent, stream=stream) == value(before, sent, stream=stream) + 1


def test_bounces_and_complaints_read_from_the_feedback_loop_are_counted(app, client):
    """A DSN and an ARF report handed to the inbound listener over SMTP, as the site's MTA
    does: the recorded bounces and complaints gauges show them, not only SMTP-session 5xx."""
    import smtplib

    from newsletter.domain.return_paths import ReturnPathCodec
    from newsletter.inbound.listener import InboundController
    from tests.conftest import TEST_SECRET_KEY
    from tests.support.feedback import BOUNCE_ADDRESS, add_delivery, add_subscriber, arf, dsn

    app.config["BOUNCE_ADDRESS"] = BOUNCE_ADDRESS
    codec = ReturnPathCodec(TEST_SECRET_KEY)
    before = scrape(client)
    with app.app_context():
        gone, full, angry = (
            add_subscriber(f"{name}@example.com") for name in ("gone", "full", "angry")
        )
        to_gone, to_full = add_delivery(gone), add_delivery(full)
        messages = [
            (codec.address(BOUNCE_ADDRESS, "delivery", to_gone.id), "gone", "5.1.1"),
            (codec.address(BOUNCE_ADDRESS, "delivery", to_full.id), "full", "4.2.2"),
        ]
        mailto = codec.address(BOUNCE_ADDRESS, "subscriber", angry.id)
    listener = InboundController(app, "127.0.0.1", free_port())
    listener.start()
    try:
        with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as smtp:
            for return_path, name, status in messages:
                smtp.sendmail("", [return_path], dsn(return_path, f"{name}@example.com", status))
            report = arf(BOUNCE_ADDRESS, "angry@example.com", f"<mailto:{mailto}>")
            smtp.sendmail("", [BOUNCE_ADDRESS], report)
    finally:
        listener.stop()
    after = scrape(client)

    def change(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert change("newsletter_recorded_bounces", source="inbound", kind="hard") == 1
    assert change("newsletter_recorded_bounces", source="inbound", kind="soft") == 1
    assert change("newsletter_recorded_bounces", source="smtp", kind="hard") == 0
    assert change("newsletter_recorded_complaints", channel="smtp") == 1
    assert change("newsletter_bounces_total", source="inbound") == 1  # the subscriber marked
    assert change("newsletter_unsubscribes_total", method="complaint") == 1
    assert change("newsletter_subscribers", status="bounced") == 1


def test_metrics_are_refused_to_other_addresses_without_the_token(app, client):
    stranger = {"environ_base": {"REMOTE_ADDR": "203.0.113.9"}}
    assert client.get("/metrics", **stranger).status_code == 404
    app.config["METRICS_TOKEN"] = "s3cret-metrics-token"
    assert client.get("/metrics", **stranger).status_code == 404
    wrong = {"Authorization": "Bearer not-the-token"}
    assert client.get("/metrics", headers=wrong, **stranger).status_code == 404
    right = {"Authorization": "Bearer s3cret-metrics-token"}
    assert client.get("/metrics", headers=right, **stranger).status_code == 200
    app.config["METRICS_TOKEN"] = ""
    app.config["METRICS_ALLOWED"] = ["10.0.0.0/8", "203.0.113.0/24"]
    assert client.get("/metrics", **stranger).status_code == 200
    assert client.get("/metrics").status_code == 404  # 127.0.0.1 is no longer listed


def test_a_scrape_during_a_send_sees_the_queue_drain_and_counters_match_the_digest(
    app, client, mailbox, start_worker
):
    size = 60
    with app.app_context():
        digest_id = start_digest_to(size)
    before = scrape(client)
    assert value(before, "newsletter_deliveries", status="queued") == size
    assert value(before, "newsletter_digests", status="sending") == 1

    port = free_port()
    worker = start_worker(
        "metrics-worker",
        env={
            "NEWSLETTER_WORKER_METRICS_PORT": str(port),
            "NEWSLETTER_SEND_MAX_RATE": "30",  # two seconds of sending: room to watch
            "NEWSLETTER_SEND_BATCH_SIZE": "5",
        },
    )
    waiting: list[float] = []
    try:
        done = threading.Event()

        def sent_all() -> bool:
            with app.app_context():
                return digest_row(digest_id).status == "sent"

        while not done.is_set():
            current = scrape(client)
            waiting.append(
                value(current, "newsletter_deliveries", status="queued")
                + value(current, "newsletter_deliveries", status="sending")
            )
            if waiting[-1] == 0 and sent_all():
                done.set()
            assert len(waiting) < 600, worker.log()
            done.wait(0.05)
        worker_text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    finally:
        worker.stop()
    print(f"deliveries waiting, scrape by scrape: {waiting}")
    assert waiting[0] <= size and waiting[-1] == 0
    assert any(0 < seen < size for seen in waiting), waiting  # seen mid-way
    assert all(a >= b for a, b in zip(waiting, waiting[1:], strict=False)), waiting

    with app.app_context():
        digest = digest_row(digest_id)
        recorded_sent, recorded_failed = digest.sent, digest.failed
    assert recorded_sent == size and len(mailbox.wait_for(size)) == size
    from_worker = samples(worker_text.decode())
    assert (
        value(from_worker, "newsletter_messages_sent_total", stream=STREAM_NEWSLETTER)
        == recorded_sent
    )
    assert value(from_worker, "newsletter_messages_failed_total", stream=STREAM_NEWSLETTER) == (
        recorded_failed
    )
    assert (
        value(from_worker, "newsletter_smtp_send_duration_seconds_count", stream=STREAM_NEWSLETTER)
        == recorded_sent
    )
    after = scrape(client)
    assert value(after, "newsletter_deliveries", status="sent") == recorded_sent
    assert value(after, "newsletter_digests", status="sent") == 1
    assert value(after, "newsletter_oldest_queued_age_seconds", stream=STREAM_NEWSLETTER) == 0


def test_deferred_messages_send_rate_and_unsubscribes_are_counted(
    app, client, smtp_sink, mailbox, run_worker
):
    """A relay that answers 451 to one reader and to one confirmation: each stream counts a
    deferral; the one delivery accepted shows in the send rate; that reader's one-click
    unsubscribe from the digest's List-Unsubscribe header counts by its method."""
    from newsletter.observability.collector import SEND_RATE_WINDOW

    before = scrape(client)
    with app.app_context():
        start_digest_to(2, prefix="rate")
    smtp_sink.rcpt_answers["rate-1@example.org"] = "451 4.7.1 Try again later"
    smtp_sink.rcpt_answers["later@example.org"] = "451 4.7.1 Try again later"
    client.post("/api/v1/subscriptions", json={"email": "later@example.org", "language": "en"})
    run_worker()
    [received] = mailbox.wait_for(1)
    assert received.to == "rate-0@example.org"
    after = scrape(client)

    def change(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    deferred = "newsletter_messages_deferred_total"
    assert change(deferred, stream=STREAM_NEWSLETTER) == 1
    assert change(deferred, stream=STREAM_TRANSACTIONAL) == 1
    assert change("newsletter_messages_sent_total", stream=STREAM_NEWSLETTER) == 1
    assert change("newsletter_messages_sent_total", stream=STREAM_TRANSACTIONAL) == 0
    # Read from the database: one message accepted within the window (tables start empty).
    rate = value(after, "newsletter_send_rate_messages_per_second")
    assert rate == pytest.approx(1 / SEND_RATE_WINDOW.total_seconds())

    one_click = [
        link.strip("<> ")
        for link in received.header("List-Unsubscribe").split(",")
        if link.strip("<> ").startswith("https://")
    ][0]
    response = client.post(urlsplit(one_click).path, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code < 400
    final = scrape(client)
    assert value(final, "newsletter_unsubscribes_total", method="one-click") == (
        value(after, "newsletter_unsubscribes_total", method="one-click") + 1
    )
    assert value(final, "newsletter_subscribers", status="unsubscribed") == 1


def test_the_scheduler_leader_is_shown_while_a_worker_holds_the_lease(app, client, start_worker):
    """A real worker process: while it holds the scheduler lease its own metrics port and
    /metrics name it as leader; once it stops (SIGTERM gives the lease back) nobody is."""
    port = free_port()
    worker = start_worker("leader-worker", env={"NEWSLETTER_WORKER_METRICS_PORT": str(port)})
    try:
        with app.app_context():
            wait_until(lambda: lease_holder() == "leader-worker", message=worker.log())

        def from_worker() -> dict:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
            return samples(text.decode())

        leaders = wait_until(
            lambda: leader_samples(from_worker()), message="no leader on the worker's port"
        )
        assert leaders == {"leader-worker": 1.0}
        assert leader_samples(scrape(client)) == {"leader-worker": 1.0}
    finally:
        assert worker.stop() == 0, worker.log()
    assert leader_samples(scrape(client)) == {}


def leader_samples(scrape: dict) -> dict[str, float]:
    return {
        dict(labels)["holder"]: sample
        for (name, labels), sample in scrape.items()
        if name == "newsletter_scheduler_leader"
    }
