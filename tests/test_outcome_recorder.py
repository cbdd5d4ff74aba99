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


def test_progress_counters_are_written_now_and_then_not_once_a_message(app, mailbox):
    size, batch = 200, 50
    app.config["SEND_BATCH_SIZE"] = batch
    with app.app_context():
        add_subscribers(size, language="en")
        add_release(language="en")
        digest = create_digest({"language": "en"})
        db.session.commit()
        digest_id = digest.id
        assert run_digest(digest_id).result == "sending"
        engine = db.engine
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
