"""The MIME writer: multipart/alternative messages (plain text first, HTML second), with
Message-ID, Date and language, serialised straight to bytes.

``multipart_alternative`` and ``header_line`` are the one writer of every message we send:
``build_message_bytes`` (one message, the outbox) and ``prepared.build_template`` (a message
with per-recipient slots, rendered once for a digest or a confirmation) both write with them.
``message_bytes`` serialises a message the email package built (the outbox accepts those too).
"""

from __future__ import annotations

import binascii
import re
import secrets
from email.charset import Charset
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import formatdate, make_msgid, parseaddr
from functools import lru_cache

from .headers import SAFE_SMTP, SAFE_SMTPUTF8, checked, encode_text_header, needs_text_encoding
from .render import RenderedEmail


def sender_domain(mail_from: str) -> str:
    address = parseaddr(mail_from)[1]
    return address.rpartition("@")[2] or "localhost"


def envelope_sender(mail_from: str) -> str:
    return parseaddr(mail_from)[1]


def message_bytes(message: EmailMessage) -> bytes:
    """Serialise with CRLF line ends, ready for SMTP DATA (SMTPUTF8 for non-ASCII addresses).

    The policies check every folded header (see ``mail.headers``): no line break can end up
    inside a header value, whatever the Python.
    """
    policy = SAFE_SMTP if str(message["To"]).isascii() else SAFE_SMTPUTF8
    return message.as_bytes(policy=policy)


# Headers whose value is free text: an ASCII value with no line break that fits on one line is
# written as is, which is exactly what the email package would write after parsing it.
_UNSTRUCTURED = frozenset(
    {"subject", "list-unsubscribe", "list-unsubscribe-post", "list-id", "precedence",
     "auto-submitted", "content-language"}
)  # fmt: skip


# A bare ASCII address in dot-atom form (RFC 5322 3.4.1) is written as is, as the email
# package would; anything else goes through its parser.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ADDRESS = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


# Headers made of angle-bracketed URLs (RFC 2369): an RFC 2047 encoded word, which the email
# package writes for a value with a word longer than a line, is no URL to a mail client.
_URL_LIST = frozenset({"list-unsubscribe", "list-help", "list-subscribe", "list-archive"})
_MAX_LINE = 998  # RFC 5322 s.2.1.1


def _fold_at_spaces(name: str, value: str) -> bytes | None:
    """``name: value`` folded at its spaces, never encoded; None when a word is too long."""
    lines: list[str] = []
    current = f"{name}:"
    for word in value.split(" "):
        if len(current) + 1 + len(word) > 78 and current.strip() not in ("", f"{name}:"):
            lines.append(current)
            current = ""
        current += " " + word
    lines.append(current)
    if any(len(line) > _MAX_LINE for line in lines):
        return None
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def header_line(name: str, value: str, *, utf8: bool = False) -> bytes:
    """``name: value`` with CRLF, folded and encoded as the email package would (``utf8``: an
    SMTPUTF8 message, raw UTF-8 allowed); a value holding a line break is refused."""
    if any(ch in value for ch in "\r\n\x00"):
        raise ValueError(f"header {name} holds a line break")
    if needs_text_encoding(name, value):
        return encode_text_header(name, value)
    key = name.lower()
    if key in _URL_LIST and value.isascii() and value.isprintable():
        folded = _fold_at_spaces(name, value)
        if folded is not None:
            return folded
    if len(name) + 2 + len(value) <= 78 and (
        (key in _UNSTRUCTURED and value.isascii() and value.isprintable() and "=?" not in value)
        or (key in ("from", "to") and _PLAIN_ADDRESS.fullmatch(value))
    ):
        return f"{name}: {value}\r\n".encode("ascii")
    return checked(name, value, _folded_header(utf8, name, value))


@lru_cache(maxsize=64)
def _folded_header(utf8: bool, name: str, value: str) -> bytes:
    """Parsed, encoded and folded by the email package (slow: cached for From and the like)."""
    policy = SMTPUTF8 if utf8 else SMTP
    return policy.fold_binary(name, policy.header_factory(name, value))


def qp(text: str) -> bytes:
    """Quoted-printable of ``text`` with CRLF line ends (input uses ``\\n``; ``binascii`` is C)."""
    return binascii.b2a_qp(text.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")


_PART_HEAD = (
    'Content-Type: text/{subtype}; charset="utf-8"\r\n'
    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
)
_PLAIN_HEAD = _PART_HEAD.format(subtype="plain").encode("ascii")
_HTML_HEAD = _PART_HEAD.format(subtype="html").encode("ascii")


def multipart_alternative(
    head: list[bytes], language: str, text_part: bytes, html_part: bytes
) -> bytes:
    """A whole message: the ``head`` header lines, then Content-Language, the MIME headers and
    the two quoted-printable parts. Each part ends with the line break that belongs to the
    boundary after it (RFC 2046)."""
    boundary = "=_" + secrets.token_hex(16)  # "=_" never occurs in quoted-printable text
    return b"".join(
        [
            *head,
            header_line("Content-Language", language),
            b"MIME-Version: 1.0\r\n",
            f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode(),
            f"--{boundary}\r\n".encode(),
            _PLAIN_HEAD,
            text_part,
            f"--{boundary}\r\n".encode(),
            _HTML_HEAD,
            html_part,
            f"--{boundary}--\r\n".encode(),
        ]
    )


def _qp_part(text: str) -> bytes:
    """A whole part's body: its own final line break kept (as the email package writes it),
    then the boundary's."""
    text = text.replace("\r\n", "\n")
    if not text.endswith("\n"):
        text += "\n"
    return qp(text) + b"\r\n"


def build_message_bytes(
    rendered: RenderedEmail,
    *,
    mail_from: str,
    to: str,
    to_name: str | None = None,
    extra_headers: dict[str, str] | None = None,
) -> bytes:
    """What the email package would write for this message, serialised directly.

    The email package parses every header into objects and encodes the bodies in pure
    Python, which made it most of the cost of a subscribe request; the same MIME structure
    written here costs a tenth. ``to`` is the recipient's address, ``to_name`` their display
    name (see ``to_header``). A non-ASCII address gets an SMTPUTF8 message.
    """
    utf8 = not to.isascii()
    head = [
        header_line("From", mail_from, utf8=utf8),
        b"To: " + to_header(to, to_name) + b"\r\n",
        header_line("Subject", rendered.subject, utf8=utf8),
        f"Date: {formatdate(localtime=False, usegmt=True)}\r\n".encode("ascii"),
        f"Message-ID: {make_msgid(domain=sender_domain(mail_from))}\r\n".encode("ascii"),
    ]
    head += [header_line(name, value, utf8=utf8) for name, value in (extra_headers or {}).items()]
    return multipart_alternative(
        head, rendered.language, _qp_part(rendered.text), _qp_part(rendered.html)
    )


# RFC 5322 specials: a display name holding one is written as a quoted string.
_UTF8 = Charset("utf-8")
_SPECIALS = re.compile(r'[][\\()<>@,:;".]')


def to_header(address: str, name: str | None = None) -> bytes:
    """The ``To`` value for an address and an optional display name, as the recipient's mail
    program will read it back: the name exactly as typed.

    An ASCII name is written as is, or quoted when it holds a special. A non-ASCII name, or
    one that would read as an RFC 2047 encoded word (``=?...?=``, which the email package
    would write raw and readers would decode), is encoded as one encoded word, as
    ``formataddr`` does: split into several, it reads back with spaces in some parsers
    (Python's among them). Names are at most 200 characters, so the line stays far within
    998. A non-ASCII address is written as raw UTF-8 (an SMTPUTF8 message, RFC 6532).
    """
    name = " ".join(name.replace("\x00", "").split()) if name else ""
    if not name:
        return address.encode()
    if name.isascii() and "=?" not in name:
        if _SPECIALS.search(name):
            escaped = name.replace("\\", "\\\\").replace('"', '\\"')
            name = f'"{escaped}"'
        return f"{name} <{address}>".encode()
    return f"{_UTF8.header_encode(name)} <{address}>".encode()
