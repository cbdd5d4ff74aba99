"""The email package's way of building a message: the reference ``build_message_bytes`` is
checked against (tests), and what a Flask user would write per recipient (bench baseline B).

Not in ``newsletter``: the service writes every message with ``mail.message``'s own writer."""

from __future__ import annotations

from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from newsletter.mail.headers import SAFE_SMTP
from newsletter.mail.message import sender_domain
from newsletter.mail.render import RenderedEmail


def build_message(
    rendered: RenderedEmail,
    *,
    mail_from: str,
    to: str,
    extra_headers: dict[str, str] | None = None,
) -> EmailMessage:
    """A ``multipart/alternative`` message with plain text first, HTML second."""
    message = EmailMessage(policy=SAFE_SMTP)
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


def recipient_header(address: str, name: str | None = None) -> str:
    if not name:
        return address
    local, _, domain = address.rpartition("@")
    return str(HeaderAddress(display_name=name, username=local, domain=domain))
