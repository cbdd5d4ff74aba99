"""Staff manage one subscriber (issue 14): language and status changes, and erasure with its
stored mail, each written once to the audit log; viewers may not."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from newsletter.domain.accounts import create_staff
from newsletter.extensions import db
from newsletter.models import AuditEntry, OutboxMessage, Subscriber, SubscriberStatus
from tests.support.accounts import STRONG_PASSWORD, login, post_form, speak_english
from tests.support.digests import add_subscribers


def console(app, role: str):
    with app.app_context():
        create_staff(f"{role}@example.org", STRONG_PASSWORD, language="en", role=role)
        db.session.commit()
    client = app.test_client()
    speak_english(client)
    assert login(client, f"{role}@example.org", STRONG_PASSWORD).status_code == 303
    return client


def test_staff_change_language_and_status_and_erase(app):
    with app.app_context():
        [email] = add_subscribers(1, language="fr")
        subscriber_id = db.session.scalar(select(Subscriber.id))
        db.session.add(
            OutboxMessage(kind="x", recipient=email, recipient_key=email, message=b"stored")
        )
        db.session.commit()
    owner = console(app, "owner")
    page = f"/admin/subscribers/{subscriber_id}"
    changed = post_form(owner, page, f"{page}/change", {"language": "en", "status": "unsubscribed"})
    assert changed.status_code == 303
    refused = post_form(owner, page, f"{page}/change", {"status": "pending"})
    assert refused.status_code == 303
    with app.app_context():
        row = db.session.get(Subscriber, subscriber_id)
        assert (row.language, row.status) == ("en", SubscriberStatus.UNSUBSCRIBED)
    erased = post_form(owner, page, f"{page}/erase", {"confirm": "erase"})
    assert erased.status_code == 303
    with app.app_context():
        assert db.session.get(Subscriber, subscriber_id) is None
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 0
        entries = list(
            db.session.scalars(
                select(AuditEntry).where(AuditEntry.action.startswith("subscriber."))
            )
        )
    assert [(e.action, e.target_ids) for e in entries] == [
        ("subscriber.update", str(subscriber_id)),
        ("subscriber.erase", str(subscriber_id)),
    ]
    assert json.loads(entries[0].details) == {
        "language": ["fr", "en"],
        "status": ["confirmed", "unsubscribed"],
    }
    erase = json.loads(entries[1].details)
    assert erase["never_mail_again"] is True and erase["stored_mail_deleted"] == 1
    assert len(erase["address_hash"]) == 64
    assert email not in entries[1].details  # the erased address is not kept in clear


def test_a_viewer_cannot_change_or_erase(app):
    with app.app_context():
        add_subscribers(1, language="fr")
        subscriber_id = db.session.scalar(select(Subscriber.id))
    viewer = console(app, "viewer")
    page = f"/admin/subscribers/{subscriber_id}"
    assert "Erase" not in viewer.get(page).get_data(as_text=True)
    assert post_form(viewer, page, f"{page}/erase", {"confirm": "erase"}).status_code == 403
    with app.app_context():
        assert db.session.get(Subscriber, subscriber_id) is not None


def erase_through_console(app, owner, email: str, status: str) -> int:
    """A subscriber with ``status`` and one stored outbox message, erased by an owner."""
    with app.app_context():
        [stored] = add_subscribers(1, language="en", prefix=email.split("@")[0])
        row = db.session.scalars(select(Subscriber).where(Subscriber.email == stored)).one()
        row.status = status
        if status == SubscriberStatus.UNSUBSCRIBED:
            row.unsubscribe_method = "complaint"
        db.session.add(
            OutboxMessage(kind="x", recipient=stored, recipient_key=stored, message=b"stored")
        )
        db.session.commit()
        subscriber_id = row.id
    page = f"/admin/subscribers/{subscriber_id}"
    assert post_form(owner, page, f"{page}/erase", {"confirm": "erase"}).status_code == 303
    return subscriber_id


def test_erasing_someone_who_left_keeps_them_off_a_later_import(app):
    """GDPR erasure of a subscriber who unsubscribed (here by complaint) or bounced leaves a
    keyed hash on the suppression list: a later CSV import refuses the address; the row and its
    stored mail are gone. Someone merely confirmed or pending who is erased leaves no entry:
    they never asked not to be mailed, and may subscribe again."""
    from newsletter.models import Suppression
    from tests.test_admin import post_import

    owner = console(app, "owner")
    left = erase_through_console(app, owner, "left@example.org", SubscriberStatus.UNSUBSCRIBED)
    gone = erase_through_console(app, owner, "gone@example.org", SubscriberStatus.BOUNCED)
    kept = erase_through_console(app, owner, "kept@example.org", SubscriberStatus.CONFIRMED)
    with app.app_context():
        for subscriber_id in (left, gone, kept):
            assert db.session.get(Subscriber, subscriber_id) is None
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 0
        reasons = list(db.session.scalars(select(Suppression.reason)))
        assert reasons == ["erased", "erased"]
        details = [
            json.loads(e.details)
            for e in db.session.scalars(
                select(AuditEntry)
                .where(AuditEntry.action == "subscriber.erase")
                .order_by(AuditEntry.id)
            )
        ]
    assert [d["suppressed"] for d in details] == [True, True, False]
    csv_text = "email\r\nleft-0@example.org\r\ngone-0@example.org\r\nkept-0@example.org\r\n"
    preview = post_import(owner, csv_text).get_data(as_text=True)
    assert preview.count("On the suppression list") == 2
    post_import(owner, csv_text, step="import")
    with app.app_context():
        keys = set(db.session.scalars(select(Subscriber.email_key)))
    assert keys == {"kept-0@example.org"}


def tables_naming(address: str) -> list[str]:
    """Every ``table.column`` of the database (reflected, not only our models) whose text or
    bytes hold ``address``, in any letter case."""
    from sqlalchemy import MetaData

    needle = address.casefold()
    metadata = MetaData()
    metadata.reflect(bind=db.engine)
    found = []
    for table in metadata.sorted_tables:
        for row in db.session.execute(select(table)).mappings():
            for column, value in row.items():
                if isinstance(value, memoryview):
                    value = value.tobytes()
                if isinstance(value, bytes):
                    value = value.decode("latin-1")
                if isinstance(value, str) and needle in value.casefold():
                    found.append(f"{table.name}.{column}")
    return sorted(set(found))


def test_erasure_leaves_the_address_in_no_table(app):
    """GDPR art. 17: a subscriber who bounced (a DSN through the feedback loop), who asked to
    leave by mail, who was sent digests, a staff test copy and webhook events, whose address was
    searched for in an export, and who wrote an out-of-office reply kept for staff, is erased
    through the console. Afterwards no text or
    bytes column of any table, audit log included, holds the address: webhook payloads are
    scrubbed, stored inbound mail dropped, and the audit log only ever held a keyed hash."""
    from newsletter.domain.return_paths import ReturnPathCodec
    from newsletter.domain.webhooks import create_endpoint
    from newsletter.inbound.processor import receive
    from newsletter.models import Delivery, InboundMessage, WebhookDelivery
    from tests.conftest import TEST_SECRET_KEY
    from tests.support.feedback import (
        BOUNCE_ADDRESS,
        add_delivery,
        add_subscriber,
        dsn,
        mailto_request,
    )

    address = "Erase.Me@example.com"
    app.config["BOUNCE_ADDRESS"] = BOUNCE_ADDRESS
    codec = ReturnPathCodec(TEST_SECRET_KEY)
    owner = console(app, "owner")
    with app.app_context():
        create_endpoint(
            "http://127.0.0.1:9/hook", ["subscriber.bounced", "subscriber.unsubscribed"]
        )
        subscriber = add_subscriber(address)
        subscriber_id = subscriber.id
        delivery = add_delivery(subscriber)
        delivery.smtp_response = f"250 ok: queued for <{address}>"
        digest_id = delivery.digest_id
        db.session.commit()
        return_path = codec.address(BOUNCE_ADDRESS, "delivery", delivery.id)
        receive("smtp", dsn(return_path, address, "5.1.1"), recipients=[return_path])
        mailto = codec.address(BOUNCE_ADDRESS, "subscriber", subscriber_id)
        receive(
            "smtp",
            mailto_request(address, mailto),
            envelope_from=address,
            recipients=[mailto],
        )
        out_of_office = (
            f"From: {address}\r\nTo: {BOUNCE_ADDRESS}\r\nSubject: Away\r\n\r\n"
            f"I am away; write to {address.lower()} next week.\r\n"
        ).encode()
        receive("smtp", out_of_office, envelope_from=address, recipients=[BOUNCE_ADDRESS])
        assert db.session.scalar(select(func.count()).select_from(WebhookDelivery)) == 2
        assert db.session.scalar(select(func.count()).select_from(InboundMessage)) == 3
    page = f"/admin/digests/{digest_id}"
    sent = post_form(owner, page, f"{page}/test", {"email": address})
    assert sent.status_code == 303
    exported = owner.get("/admin/subscribers/export.csv", query_string={"q": address})
    assert address in exported.get_data(as_text=True)
    with app.app_context():
        before = tables_naming(address)
    # The feedback loop, the webhook queue and the test send did store it.
    assert {"inbound_messages.raw", "webhook_deliveries.body", "subscribers.email"} <= set(before)
    page = f"/admin/subscribers/{subscriber_id}"
    assert post_form(owner, page, f"{page}/erase", {"confirm": "erase"}).status_code == 303
    with app.app_context():
        left_behind = tables_naming(address)
        assert left_behind == [], left_behind
        assert db.session.scalar(select(func.count()).select_from(Delivery)) == 0
        # The webhook log and the inbound log keep their rows, without the person in them.
        bodies = [json.loads(body) for body in db.session.scalars(select(WebhookDelivery.body))]
        assert [body["data"]["id"] for body in bodies] == [subscriber_id, subscriber_id]
        assert all(body["data"]["email"] is None for body in bodies)
        assert db.session.scalar(select(func.count()).select_from(InboundMessage)) == 3


def test_staff_status_changes_queue_the_webhook_events_and_count(app):
    """Marking a subscriber unsubscribed or bounced from the console goes through the same
    domain changes as a reader's link or a DSN: ``subscriber.unsubscribed`` (method "staff")
    and ``subscriber.bounced`` are queued for an endpoint that wants them, in the transaction
    of the change, and the unsubscribe and bounce counters move."""
    from prometheus_client import REGISTRY

    from newsletter.domain.webhooks import create_endpoint
    from newsletter.models import WebhookDelivery

    def counted(name: str, labels: dict[str, str]) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0

    with app.app_context():
        create_endpoint(
            "http://127.0.0.1:9/hook", ["subscriber.bounced", "subscriber.unsubscribed"]
        )
        db.session.commit()
        leaving, bouncing = add_subscribers(2, language="en", prefix="status")
        ids = {
            row.email: row.id
            for row in db.session.scalars(select(Subscriber).order_by(Subscriber.id))
        }
    unsubscribes = counted("newsletter_unsubscribes_total", {"method": "staff"})
    bounces = counted("newsletter_bounces_total", {"source": "staff"})
    owner = console(app, "owner")
    for email, status in ((leaving, "unsubscribed"), (bouncing, "bounced")):
        page = f"/admin/subscribers/{ids[email]}"
        assert post_form(owner, page, f"{page}/change", {"status": status}).status_code == 303
    # Someone who left cannot bounce any more: refused, nothing said twice.
    page = f"/admin/subscribers/{ids[leaving]}"
    refused = post_form(owner, page, f"{page}/change", {"status": "bounced"}, follow_redirects=True)
    assert "has left already" in refused.get_data(as_text=True)
    with app.app_context():
        rows = db.session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)).all()
        events = [(row.event_type, json.loads(row.body)["data"]) for row in rows]
        statuses = {
            row.email: (row.status, row.unsubscribe_method)
            for row in db.session.scalars(select(Subscriber))
        }
    assert [(kind, data["id"]) for kind, data in events] == [
        ("subscriber.unsubscribed", ids[leaving]),
        ("subscriber.bounced", ids[bouncing]),
    ]
    assert events[0][1]["method"] == "staff"
    assert {row.status for row in rows} == {"queued"}
    assert statuses == {leaving: ("unsubscribed", "staff"), bouncing: ("bounced", None)}
    assert counted("newsletter_unsubscribes_total", {"method": "staff"}) == unsubscribes + 1
    assert counted("newsletter_bounces_total", {"source": "staff"}) == bounces + 1
