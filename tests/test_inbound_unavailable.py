"""The listener when it cannot store: it answers 451 (a temporary failure, RFC 5321 §4.2.5), so
the MTA keeps the message in its queue and tries again, and the retry is stored and applied.
Fed by smtplib over SMTP and LMTP, as an MTA would."""

from __future__ import annotations

import smtplib
import sqlite3

import pytest
from sqlalchemy import func, select

from newsletter.extensions import db
from newsletter.inbound.listener import InboundController
from newsletter.models import InboundMessage
from tests.conftest import free_port
from tests.support.feedback import bounced_reader, status_of

pytestmark = pytest.mark.verp


def hand_over(
    port: int, lmtp: bool, recipient: str, data: bytes, timeout: float = 60
) -> tuple[int, bytes]:
    """One delivery attempt of an MTA: the code and text of the reply to the message."""
    if lmtp:
        client = smtplib.LMTP("127.0.0.1", port, timeout=timeout)
    else:
        client = smtplib.SMTP("127.0.0.1", port, timeout=timeout)
    with client:
        try:
            client.sendmail("", [recipient], data)
        except smtplib.SMTPDataError as refused:
            return refused.smtp_code, refused.smtp_error
        return 250, b""


def stored() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count(InboundMessage.id))) or 0


def assert_stored_once_and_applied(app, subscriber_id: int) -> None:
    """The retried DSN was stored once and its reader is bounced."""
    with app.app_context():
        assert stored() == 1
        assert status_of(subscriber_id) == "bounced"


def unreachable_database_url(database_url: str, tmp_path) -> str:
    if database_url.startswith("postgresql"):
        return f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"  # nothing listens
    return f"sqlite:///{tmp_path}/no-such-folder/newsletter.db"


@pytest.mark.parametrize("lmtp", [False, True], ids=["smtp", "lmtp"])
def test_an_unreachable_database_is_answered_451_and_the_retry_is_stored(
    app, make_app, database_url, tmp_path, codec, lmtp
):
    with app.app_context():
        gone_id, return_path, data = bounced_reader(codec)

    cut_off = make_app(SQLALCHEMY_DATABASE_URI=unreachable_database_url(database_url, tmp_path))
    down = InboundController(cut_off, "127.0.0.1", free_port(), lmtp=lmtp)
    down.start()
    try:
        code, text = hand_over(down.port, lmtp, return_path, data)
    finally:
        down.stop()
    assert code == 451, text
    assert text.startswith(b"4.3.0")
    with app.app_context():
        assert stored() == 0
        assert status_of(gone_id) == "confirmed"

    # The MTA tries again once the database is back: stored, applied, 250.
    up = InboundController(app, "127.0.0.1", free_port(), lmtp=lmtp)
    up.start()
    try:
        assert hand_over(up.port, lmtp, return_path, data) == (250, b"")
    finally:
        up.stop()
    assert_stored_once_and_applied(app, gone_id)


def test_a_locked_sqlite_database_is_answered_451(app, make_app, database_url, codec, monkeypatch):
    if database_url.startswith("postgresql"):
        pytest.skip("SQLite's file lock; PostgreSQL's table lock has its own test below")
    import newsletter

    # Wait 1 s for the lock instead of 15 s: the test is about the answer, not the wait.
    monkeypatch.setattr(newsletter, "SQLITE_BUSY_TIMEOUT_SECONDS", 1)
    with app.app_context():
        gone_id, return_path, data = bounced_reader(codec)
    listener = InboundController(make_app(), "127.0.0.1", free_port())
    listener.start()
    path = database_url.removeprefix("sqlite:///")
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # another writer holds the database
        code, _text = hand_over(listener.port, False, return_path, data)
        assert code == 451
        holder.execute("ROLLBACK")
        assert hand_over(listener.port, False, return_path, data) == (250, b"")
    finally:
        holder.close()
        listener.stop()
    assert_stored_once_and_applied(app, gone_id)


def test_a_locked_postgresql_table_is_answered_451_not_waited_on(
    app, make_app, database_url, codec, monkeypatch
):
    """A migration or a stuck transaction holding the table: the listener gives up after
    INBOUND_STORE_LOCK_TIMEOUT_SECONDS and answers 451, instead of holding the MTA's
    connection until the MTA's own timeout."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's table locks; SQLite's busy timeout is tested above")
    import psycopg

    from newsletter.inbound import processor

    monkeypatch.setattr(processor, "INBOUND_STORE_LOCK_TIMEOUT_SECONDS", 1)
    with app.app_context():
        gone_id, return_path, data = bounced_reader(codec)
    listener = InboundController(app, "127.0.0.1", free_port())
    listener.start()
    holder = psycopg.connect(database_url.replace("postgresql+psycopg", "postgresql"))
    try:
        holder.execute("LOCK TABLE inbound_messages IN ACCESS EXCLUSIVE MODE")
        code, _text = hand_over(listener.port, False, return_path, data, timeout=20)
        assert code == 451
        holder.rollback()
        assert hand_over(listener.port, False, return_path, data) == (250, b"")
    finally:
        holder.close()
        listener.stop()
    assert_stored_once_and_applied(app, gone_id)
