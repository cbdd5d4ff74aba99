"""``NEWSLETTER_LOG_FORMAT=json``: one JSON object per line from gunicorn's app and the worker,
with the request id (``X-Request-ID`` honoured) and the digest id; never a token, a code or a
password, though a subscription, a password reset and a digest all went through."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, TEST_SECRET_KEY, free_port
from tests.support.deployment import STAFF_PASSWORD, Deployment, wait_for_mail

pytestmark = pytest.mark.slow


def json_lines(path: Path) -> list[dict]:
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))  # every structured line parses
    return lines


def json_logging_deployment(
    tmp_path: Path, database_url: str, smtp_sink, **env: str
) -> Deployment:
    """This checkout's service logging JSON, its logs in ``tmp_path``, run from ``site/``."""
    site = tmp_path / "site"
    site.mkdir()
    return Deployment(
        Path(sys.executable).parent,
        site,
        {
            "NEWSLETTER_DATABASE_URL": database_url,
            "NEWSLETTER_MAIL_URL": f"smtp://127.0.0.1:{smtp_sink.port}?timeout=10",
            "NEWSLETTER_SECRET_KEY": TEST_SECRET_KEY,
            "NEWSLETTER_PUBLIC_URL": "https://news.example.org",
            "NEWSLETTER_LOG_FORMAT": "json",
            "PYTHONPATH": str(ROOT),  # this checkout's code, whatever the venv has installed
            **env,
        },
        tmp_path,
    )


def test_json_logs_carry_ids_and_no_secrets(app, database_url, smtp_sink, mailbox, tmp_path):
    deployment = json_logging_deployment(
        tmp_path, database_url, smtp_sink, NEWSLETTER_SCHEDULER_LEASE_SECONDS="3"
    )
    token = deployment.staff_token("editor@example.org")
    try:
        deployment.start_gunicorn(free_port(), workers=1)
        deployment.start_worker("json-worker")
        status, _ = deployment.request(
            "POST",
            "/api/v1/subscriptions",
            {"email": "reader@example.org", "language": "fr"},
            headers={"X-Request-ID": "test-req-42"},
        )
        assert status == 202
        status, _ = deployment.request(
            "POST", "/api/v1/account/password-reset", {"email": "editor@example.org"}
        )
        assert status == 202
        [confirmation] = wait_for_mail(mailbox, "reader@example.org")
        link = confirmation.links()[0]
        confirm_token = link.rsplit("/", 1)[-1]
        deployment.confirm(link)
        [reset] = wait_for_mail(mailbox, "editor@example.org")
        code = re.search(r"\b(\d{6})\b", reset.text).group(1)

        digest_id = deployment.publish_digest(
            token,
            {
                "title": "Journal",
                "summary": "Résumé",
                "body": "<p>Texte</p>",
                "url": "https://example.org/j",
            },
        )
        wait_for_mail(mailbox, "reader@example.org", count=3)  # confirmation, welcome, digest
    finally:
        deployment.stop()

    web = json_lines(tmp_path / "gunicorn.log")
    worker = json_lines(tmp_path / "json-worker.log")
    subscribe = [e for e in web if e.get("route") == "/api/v1/subscriptions"]
    assert subscribe and subscribe[0]["request_id"] == "test-req-42"
    assert subscribe[0]["status"] == 202 and subscribe[0]["method"] == "POST"
    confirm = [e for e in web if e.get("route", "").startswith("/subscribe/confirm/")]
    assert confirm and confirm[0]["route"] == "/subscribe/confirm/<token>"
    assert all(
        re.fullmatch(r"[0-9a-f]{32}", e["request_id"])
        for e in web
        if e is not subscribe[0] and "route" in e
    )
    assert any(e.get("digest_id") == digest_id for e in worker), worker
    everything = "\n".join(path.read_text(errors="replace") for path in tmp_path.glob("*.log"))
    for secret in (confirm_token, code, token, STAFF_PASSWORD, TEST_SECRET_KEY):
        assert secret not in everything, secret


def test_a_digest_delivery_logs_its_delivery_id(app, database_url, smtp_sink, mailbox, tmp_path):
    """A live worker sending a digest: the line about a reader the relay put off carries the
    digest id and that delivery's id, so an operator can find the row from the log."""
    from sqlalchemy import select

    from newsletter.extensions import db
    from newsletter.models import Delivery, Subscriber
    from tests.support.digests import start_digest_to, wait_until

    with app.app_context():
        digest_id = start_digest_to(2, prefix="logged")
        deferred_id = db.session.scalar(
            select(Delivery.id)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Subscriber.email == "logged-1@example.org")
        )
    smtp_sink.rcpt_answers["logged-1@example.org"] = "451 4.7.1 Try again later"
    deployment = json_logging_deployment(tmp_path, database_url, smtp_sink)
    log = tmp_path / "json-sender.log"
    try:
        deployment.start_worker("json-sender")
        wait_for_mail(mailbox, "logged-0@example.org")
        wait_until(
            lambda: any(e.get("delivery_id") == deferred_id for e in json_lines(log)),
            message=log.read_text(errors="replace"),
        )
    finally:
        deployment.stop()
    [entry] = [e for e in json_lines(log) if e.get("delivery_id") == deferred_id]
    assert entry["digest_id"] == digest_id
    assert entry["level"] == "warning" and "deferred" in entry["message"]


def test_a_secret_that_slips_into_a_message_is_redacted():
    import logging

    from newsletter.observability.logs import JsonFormatter, log_context

    record = logging.LogRecord(
        "newsletter.x",
        logging.WARNING,
        __file__,
        1,
        "GET https://news.example.org/subscribe/confirm/%s with Bearer %s, code=%s, %s",
        (
            "eyJzIjoxLCJmIjoiMTk5NzRhYjcwMTZlYWQ4YiJ9.aw8wHQ.eCYNSj4iPA1ABO5Z1ZhXt2_t50E",
            "abc123secret",
            "493021",
            "smtp://user:hunter2@relay:587",
        ),
        None,
    )
    with log_context(digest_id=7, delivery_id=99):
        entry = json.loads(JsonFormatter().format(record))
    assert entry["digest_id"] == 7 and entry["delivery_id"] == 99
    for secret in ("eCYNSj4iPA1ABO5Z1ZhXt2_t50E", "abc123secret", "493021", "hunter2"):
        assert secret not in entry["message"], entry["message"]
