"""What comes back from the world, built as real MTAs and mailbox providers write it: RFC 3464
DSNs, RFC 5965 ARF reports, mailto unsubscribe requests, and garbage."""

from __future__ import annotations

import random

from newsletter.extensions import db
from newsletter.models import Delivery, Digest, Subscriber, SubscriberStatus, utcnow
from tests.support.digests import subscriber_values

BOUNCE_ADDRESS = "bounces@example.org"


def add_subscriber(email: str, status: str = SubscriberStatus.CONFIRMED) -> Subscriber:
    """One French subscriber (confirmed unless ``status`` says otherwise). Commits."""
    subscriber = Subscriber(**subscriber_values(email, status=status))
    db.session.add(subscriber)
    db.session.commit()
    return subscriber


def add_delivery(subscriber: Subscriber, digest: Digest | None = None) -> Delivery:
    """A sent digest delivery to ``subscriber`` (a digest is made when none is given)."""
    if digest is None:
        digest = Digest(language="fr", status="sent", send_at=utcnow())
        db.session.add(digest)
        db.session.flush()
    delivery = Delivery(digest_id=digest.id, subscriber_id=subscriber.id, status="sent")
    db.session.add(delivery)
    db.session.commit()
    return delivery


def delivery_return_path(codec, subscriber: Subscriber) -> str:
    """A new sent delivery to ``subscriber``; returns its return path, where bounces of it
    come back (``codec`` signs as the app does)."""
    return codec.address(BOUNCE_ADDRESS, "delivery", add_delivery(subscriber).id)


def bounced_reader(codec, email: str = "gone@example.com") -> tuple[int, str, bytes]:
    """A confirmed reader with one sent delivery whose mailbox is gone: returns the reader's
    id, that delivery's return path and the 5.1.1 DSN its MTA sends back there."""
    reader = add_subscriber(email)
    return_path = delivery_return_path(codec, reader)
    return reader.id, return_path, dsn(return_path, email, "5.1.1")


def _postfix_report(
    return_path: str, final_recipient: str, subject: str, boundary: str, notice: str, fields: str
) -> bytes:
    """A Postfix-style RFC 3464 report sent to ``return_path``: ``notice`` for people, then the
    delivery status of ``final_recipient`` (``fields`` after its address), then the headers of
    the digest it is about."""
    return (
        f"Return-Path: <>\r\n"
        f"Delivered-To: {return_path}\r\n"
        f"From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n"
        f"To: {return_path}\r\n"
        f"Subject: {subject}\r\n"
        f"Auto-Submitted: auto-replied\r\n"
        f"MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
        f"\r\n"
        f"--{boundary}\r\n"
        f"Content-Type: text/plain; charset=us-ascii\r\n"
        f"\r\n"
        f"{notice}"
        f"\r\n"
        f"--{boundary}\r\n"
        f"Content-Type: message/delivery-status\r\n"
        f"\r\n"
        f"Reporting-MTA: dns; mx.example.net\r\n"
        f"Arrival-Date: Tue, 1 Dec 2026 20:00:00 +0000\r\n"
        f"\r\n"
        f"Final-Recipient: rfc822; {final_recipient}\r\n"
        f"Original-Recipient: rfc822;{final_recipient}\r\n"
        f"{fields}"
        f"\r\n"
        f"--{boundary}\r\n"
        f"Content-Type: text/rfc822-headers\r\n"
        f"\r\n"
        f"Return-Path: <{return_path}>\r\n"
        f"From: Newsroom <news@example.org>\r\n"
        f"To: {final_recipient}\r\n"
        f"Subject: Digest\r\n"
        f"\r\n"
        f"--{boundary}--\r\n"
    ).encode()


def dsn(return_path: str, final_recipient: str, status: str, action: str = "failed") -> bytes:
    """A Postfix-style RFC 3464 delivery status notification, sent to ``return_path``."""
    diagnostic = {
        "5": f"smtp; 550 5.1.1 <{final_recipient}>: Recipient address rejected: User unknown",
        "4": f"smtp; 452 4.2.2 <{final_recipient}>: Mailbox full",
    }[status[0]]
    return _postfix_report(
        return_path,
        final_recipient,
        "Undelivered Mail Returned to Sender",
        "BND",
        "I'm sorry to have to inform you that your message could not be delivered.\r\n",
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        f"Remote-MTA: dns; mx.example.com\r\n"
        f"Diagnostic-Code: {diagnostic}\r\n",
    )


def delay_notice(return_path: str, final_recipient: str) -> bytes:
    """Postfix's "Delayed Mail (still being retried)" warning: an RFC 3464 DSN whose only
    recipient block says ``Action: delayed`` (the message is still queued, not failed)."""
    return _postfix_report(
        return_path,
        final_recipient,
        "Delayed Mail (still being retried)",
        "DLY",
        "This is a warning only; you do not need to resend your message.\r\n"
        "Delivery will be attempted again for 4 days.\r\n",
        "Action: delayed\r\n"
        "Status: 4.4.1\r\n"
        "Diagnostic-Code: X-Postfix; connect to mx.example.com[192.0.2.7]:25: Connection timed"
        " out\r\n"
        "Will-Retry-Until: Sat, 5 Dec 2026 20:00:00 +0000\r\n",
    )


def arf(report_to: str, original_recipient: str, list_unsubscribe: str) -> bytes:
    """An RFC 5965 abuse report as a mailbox provider's feedback loop sends it."""
    return (
        f"From: Feedback Loop <fbl@isp.example.net>\r\n"
        f"To: {report_to}\r\n"
        f"Subject: FW: Digest\r\n"
        f"MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=feedback-report; boundary="ARF"\r\n'
        f"\r\n"
        f"--ARF\r\n"
        f"Content-Type: text/plain; charset=us-ascii\r\n"
        f"\r\n"
        f"This is an email abuse report for an email message received.\r\n"
        f"\r\n"
        f"--ARF\r\n"
        f"Content-Type: message/feedback-report\r\n"
        f"\r\n"
        f"Feedback-Type: abuse\r\n"
        f"User-Agent: ExampleFBL/1.0\r\n"
        f"Version: 1\r\n"
        f"Original-Rcpt-To: <{original_recipient}>\r\n"
        f"\r\n"
        f"--ARF\r\n"
        f"Content-Type: message/rfc822\r\n"
        f"\r\n"
        f"From: Newsroom <news@example.org>\r\n"
        f"To: {original_recipient}\r\n"
        f"Subject: Digest\r\n"
        f"List-Unsubscribe: {list_unsubscribe}\r\n"
        f"MIME-Version: 1.0\r\n"
        f"Content-Type: text/plain\r\n"
        f"\r\n"
        f"The digest.\r\n"
        f"\r\n"
        f"--ARF--\r\n"
    ).encode()


def mailto_request(sender: str, to: str) -> bytes:
    """What a mail client sends for the ``mailto:`` of List-Unsubscribe."""
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: unsubscribe\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain\r\n\r\nunsubscribe\r\n"
    ).encode()


# Any byte but line ends, which SMTP itself defines.
_NOISE = bytes(b for b in range(256) if b not in (10, 13))


def malformed_messages(count: int, to: str, seed: int = 12) -> list[bytes]:
    """Broken MIME, lying headers, binary noise, half reports: none may change anything."""
    rng = random.Random(seed)
    shapes = [
        lambda: b"\r\n".join(
            bytes(rng.choice(_NOISE) for _ in range(rng.randint(0, 200)))
            for _ in range(rng.randint(1, 15))
        ),
        lambda: (
            b'Content-Type: multipart/report; report-type=delivery-status; boundary="x'
            + bytes(rng.getrandbits(8) for _ in range(40)).replace(b"\n", b"")
            + b'"\r\n\r\n--x\r\nContent-Type: message/delivery-status\r\n\r\nStatus: 5.1.1\r\n'
        ),
        lambda: b"Content-Type: message/feedback-report\r\n\r\n\xff\xfe\x00garbage",
        lambda: f"To: {to}\r\nFrom: x\r\nContent-Type: multipart/mixed\r\n\r\nno boundary".encode(),
        lambda: b"To: bounces+d-aa-aaaaaaaaaa@example.org\r\nSubject: forged\r\n\r\nhi",
        lambda: f"To: bounces+u-{'b' * rng.randint(1, 30)}-zz@example.org\r\n\r\nx".encode(),
        lambda: b'Content-Type: text/plain; charset="unknown-8bit\x00"\r\n\r\n\x80\x81',
        lambda: b"Subject: =?utf-8?b?////?=\r\nContent-Transfer-Encoding: base64\r\n\r\n@@@@",
        lambda: (
            b"Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n"
            b"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
            + b"Final-Recipient: rfc822; "
            + b"a" * 900
            + b"\r\nStatus: 9.9.9\r\n\r\n--B--\r\n"
        ),
        lambda: b"\r\n" * rng.randint(1, 50),
    ]
    return [shapes[index % len(shapes)]() for index in range(count)]


def qmail_bounce(to: str, failed: str, original_return_path: str = "") -> bytes:
    """qmail's plain-text QSBMF bounce (no DSN part): only flufl.bounce's detectors read it."""
    return (
        f"Return-Path: <>\r\n"
        f"Delivered-To: {to}\r\n"
        f"From: MAILER-DAEMON@mx.example.net\r\n"
        f"To: {to}\r\n"
        f"Subject: failure notice\r\n"
        f"\r\n"
        f"Hi. This is the qmail-send program at mx.example.net.\r\n"
        f"I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
        f"This is a permanent error; I've given up. Sorry it didn't work out.\r\n"
        f"\r\n"
        f"<{failed}>:\r\n"
        f"Sorry, no mailbox here by that name. (#5.1.1)\r\n"
        f"\r\n"
        f"--- Below this line is a copy of the message.\r\n"
        f"\r\n"
        f"Return-Path: <{original_return_path or to}>\r\n" + quoted_digest(failed)
    ).encode()


def quoted_digest(failed: str) -> str:
    """The copy of the original digest a plain-text bounce quotes after its explanation."""
    return (
        f"From: Newsroom <news@example.org>\r\nTo: {failed}\r\nSubject: Digest\r\n\r\n"
        "The digest.\r\n"
    )


def exim_bounce(to: str, failed: str) -> bytes:
    """Exim's plain-text bounce, naming the failed address in X-Failed-Recipients."""
    return (
        f"Return-path: <>\r\n"
        f"Envelope-to: {to}\r\n"
        f"From: Mail Delivery System <Mailer-Daemon@mx.example.net>\r\n"
        f"To: {to}\r\n"
        f"Subject: Mail delivery failed: returning message to sender\r\n"
        f"X-Failed-Recipients: {failed}\r\n"
        f"Auto-Submitted: auto-replied\r\n"
        f"\r\n"
        f"This message was created automatically by mail delivery software.\r\n"
        f"\r\n"
        f"A message that you sent could not be delivered to one or more of its\r\n"
        f"recipients. This is a permanent error. The following address(es) failed:\r\n"
        f"\r\n"
        f"  {failed}\r\n"
        f"    SMTP error from remote mail server after RCPT TO:<{failed}>:\r\n"
        f"    550 5.1.1 User unknown\r\n"
        f"\r\n"
        f"------ This is a copy of the message, including all the headers. ------\r\n"
        f"\r\n" + quoted_digest(failed)
    ).encode()


def yahoo_bounce(to: str, failed: str) -> bytes:
    """Yahoo!'s own plain-text bounce format."""
    return (
        f"Return-Path: <>\r\n"
        f"From: MAILER-DAEMON@yahoo.com\r\n"
        f"To: {to}\r\n"
        f"Subject: Failure Notice\r\n"
        f"X-Uidl: GVMPJTx2Ak4ZoFwAyf\r\n"
        f"\r\n"
        f"Message from  yahoo.com.\r\n"
        f"Unable to deliver message to the following address(es).\r\n"
        f"\r\n"
        f"<{failed}>:\r\n"
        f"Sorry your message to {failed} cannot be delivered. This account has been"
        f" disabled or discontinued [#102].\r\n"
        f"\r\n"
        f"--- Original message follows.\r\n"
        f"\r\n" + quoted_digest(failed)
    ).encode()


def bare_dsn(to: str, final_recipient: str, status: str, original_recipient: str = "") -> bytes:
    """An RFC 3464 DSN that quotes nothing of the original (no headers, no Return-Path)."""
    original = original_recipient or final_recipient
    return (
        f"From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.net>\r\n"
        f"To: {to}\r\n"
        f"Subject: Delivery Status Notification (Failure)\r\n"
        f"MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="B2"\r\n'
        f"\r\n"
        f"--B2\r\n"
        f"Content-Type: text/plain\r\n"
        f"\r\n"
        f"Delivery to {final_recipient} failed.\r\n"
        f"\r\n"
        f"--B2\r\n"
        f"Content-Type: message/delivery-status\r\n"
        f"\r\n"
        f"Reporting-MTA: dns; mx.example.net\r\n"
        f"\r\n"
        f"Original-Recipient: rfc822;{original}\r\n"
        f"Final-Recipient: rfc822; {final_recipient}\r\n"
        f"Action: failed\r\n"
        f"Status: {status}\r\n"
        f"\r\n"
        f"--B2--\r\n"
    ).encode()


def send(listener, recipient: str, data: bytes) -> None:
    """Hand ``data`` to the inbound listener as an MTA would (null sender, one recipient)."""
    import smtplib

    with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as client:
        assert client.sendmail("", [recipient], data) == {}


def status_of(subscriber_id: int) -> str:
    from newsletter.extensions import db
    from newsletter.models import Subscriber

    db.session.expire_all()
    return db.session.get(Subscriber, subscriber_id).status
