"""The outcome recorder (issue 10): outcomes committed as they come, the digest's progress
counters only now and then (one contended row: written per message they serialised every
sender behind it)."""

from __future__ import annotations

import time

from sqlalchemy import event

from newsletter.delivery.digest_runs import run_digest
from newsletter.delivery.outcome_recorder import COUNTERS_EVERY_SECONDS
from newsletter.delivery.sending_pool import DigestSendingPool
from newsletter.domain.digests import create_digest
from newsletter.extensions import db
from newsletter.models import DigestStatus
from tests.support.digests import add_release, add_subscribers, digest_row


def start_sending(app, size: int, batch: int):
    """A digest to ``size`` subscribers, started and waiting for a pool; (its id, the engine)."""
    app.config["SEND_BATCH_SIZE"] = batch
    with app.app_context():
        add_subscribers(size, language="en")
        add_release(language="en")
        digest = create_digest({"language": "en"})
        db.session.commit()
        assert run_digest(digest.id).result == "sending"
        return digest.id, db.engine


def test_progress_counters_are_written_now_and_then_not_once_a_message(app, mailbox):
    size, batch = 200, 50
    digest_id, engine = start_sending(app, size, batch)
    counter_writes: list[str] = []

    def note(connection, cursor, statement, parameters, context, executemany):
        if " ".join(statement.split()).startswith("UPDATE digests SET sent=(digests.sent +"):
            counter_writes.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        started = time.monotonic()
        DigestSendingPool(app).run_until_idle()
        elapsed = time.monotonic() - started
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert len(mailbox.wait_for(size)) == size
    with app.app_context():
        row = digest_row(digest_id)
        assert (row.status, row.sent, row.failed) == (DigestStatus.SENT, size, 0)
    # At most once per batch (the sender's flush) and once per interval per connection.
    connections = int(app.config["SEND_CONNECTIONS"])
    bound = size // batch + connections * (elapsed / COUNTERS_EVERY_SECONDS + 1)
    assert len(counter_writes) <= bound, f"{len(counter_writes)} counter writes in {elapsed:.1f}s"


def test_a_lost_recorder_connection_costs_no_outcome_and_no_duplicate(app, mailbox, caplog):
    """The recorder writes on a connection of its own: when a write on it fails (the server
    ended it, a lock), the outcomes are kept, written through a new connection, and nothing
    is sent twice."""
    size = 60
    digest_id, engine = start_sending(app, size, batch=20)
    failures: list[int] = []

    def fail_twice(connection, cursor, statement, parameters, context, executemany):
        marking = (
            statement.startswith("UPDATE deliveries SET status") and "smtp_response" in statement
        )
        if marking and len(failures) < 2:
            failures.append(id(connection))
            connection.invalidate()
            raise RuntimeError("the database ended the recorder's connection")

    event.listen(engine, "before_cursor_execute", fail_twice)
    try:
        with caplog.at_level("WARNING", logger="newsletter.delivery.outcome_recorder"):
            DigestSendingPool(app).run_until_idle()
    finally:
        event.remove(engine, "before_cursor_execute", fail_twice)
    assert len(failures) == 2
    assert "recording outcomes failed; retrying" in caplog.text
    received = mailbox.wait_for(size)
    time.sleep(0.3)  # anything sent twice would have arrived by now
    recipients = [address for message in mailbox.messages for address in message.rcpt_tos]
    assert len(recipients) == size and len(set(recipients)) == size
    with app.app_context():
        row = digest_row(digest_id)
        assert (row.status, row.sent, row.failed) == (DigestStatus.SENT, size, 0)
    assert len(received) == size
