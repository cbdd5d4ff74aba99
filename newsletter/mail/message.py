"""Build standard MIME messages: multipart/alternative, Message-ID, Date, language."""

from __future__ import annotations

from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import formatdate, make_msgid, parseaddr

from .render import RenderedEmail


def sender_domain(mail_from: str) -> str:
    address = parseaddr(mail_from)[1]
    return address.rpartition("@")[2] or "localhost"


def envelope_sender(mail_from: str) -> str:
    return parseaddr(mail_from)[1]


def build_message(
    rendered: RenderedEmail,
    *,
    mail_from: str,
    to: str,
    extra_headers: dict[str, str] | None = None,
) -> EmailMessage:
    """A ``multipart/alternative`` message with plain text first, HTML second."""
    message = EmailMessage(policy=SMTP)
    message["From"] = mail_from
    message["To"] = to
    message["Subject"] = rendered.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender_domain(mail_from))
    for name, value in (extra_headers or {}).items():
        message[name] = value
    message.set_content(rendered.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="quoted-printable")
    # After the parts: set_content() drops every Content-* header set before it.
    message["Content-Language"] = rendered.language
    return message


def message_bytes(message: EmailMessage) -> bytes:
    """Serialise with CRLF line ends, ready for SMTP DATA (SMTPUTF8 for non-ASCII addresses)."""
    policy = SMTP if str(message["To"]).isascii() else SMTPUTF8
    return message.as_bytes(policy=policy)


def recipient_header(address: str, name: str | None = None) -> str:
    if not name:
        return address
    local, _, domain = address.rpartition("@")
    return str(HeaderAddress(display_name=name, username=local, domain=domain))
