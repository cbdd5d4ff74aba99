"""A message rendered once and personalised per recipient by substitution into bytes.

Rendering an email (Jinja, CSS inlining, MIME serialisation) costs far more than sending it.
So a digest, or a subscription confirmation, is serialised once into a *template*: the final
message bytes with NUL-delimited slots for what differs per recipient (To, Message-ID, Date,
the unsubscribe URL in the ``List-Unsubscribe`` header and in both bodies, a personal link,
the recipient's name). Personalising is a ``bytes.join``.

The bodies are quoted-printable. A slot inside a body sits between two soft line breaks
(``=\\r\\n``), which decoders remove, so each piece is encoded on its own, line lengths stay
within RFC 2045's 76 characters, and the URL is encoded per recipient (``binascii`` is C).
NUL never occurs in a message we build, so it can mark slots safely.
"""

from __future__ import annotations

import hashlib
import html
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formatdate

from markupsafe import escape

from .message import header_line, multipart_alternative, qp, sender_domain, to_header
from .render import RenderedEmail

# What a template marks in rendered text and HTML where per-recipient values go (letters and
# digits only, so neither Jinja escaping nor CSS inlining touches them): the unsubscribe URL,
# a personal link (a confirmation URL, say) and the recipient's name.
UNSUBSCRIBE_MARKER = "NLUNSUBSCRIBEURL7F3A9C"
LINK_MARKER = "NLPERSONALLINK5E2B8D"
NAME_MARKER = "NLRECIPIENTNAME9D4C1A"

SLOT_TO = "to"
SLOT_MESSAGE_ID = "message_id"
SLOT_DATE = "date"
SLOT_UNSUBSCRIBE_HEADER = "unsubscribe_header"
SLOT_UNSUBSCRIBE_TEXT = "unsubscribe_text"
SLOT_UNSUBSCRIBE_HTML = "unsubscribe_html"
SLOT_LINK_TEXT = "link_text"
SLOT_LINK_HTML = "link_html"
SLOT_NAME_TEXT = "name_text"
SLOT_NAME_HTML = "name_html"
# The address of a personal List-Unsubscribe mailto (VERP, issue 12); last, so templates
# stored before it keep their slot numbers.
SLOT_UNSUBSCRIBE_MAILTO = "unsubscribe_mailto"
SLOTS = (
    SLOT_TO,
    SLOT_MESSAGE_ID,
    SLOT_DATE,
    SLOT_UNSUBSCRIBE_HEADER,
    SLOT_UNSUBSCRIBE_TEXT,
    SLOT_UNSUBSCRIBE_HTML,
    SLOT_LINK_TEXT,
    SLOT_LINK_HTML,
    SLOT_NAME_TEXT,
    SLOT_NAME_HTML,
    SLOT_UNSUBSCRIBE_MAILTO,
)
_SLOT_INDEX = {name: index for index, name in enumerate(SLOTS)}
# Body markers and the slot each becomes in the text part and in the HTML part.
_BODY_SLOTS = {
    UNSUBSCRIBE_MARKER: (SLOT_UNSUBSCRIBE_TEXT, SLOT_UNSUBSCRIBE_HTML),
    LINK_MARKER: (SLOT_LINK_TEXT, SLOT_LINK_HTML),
    NAME_MARKER: (SLOT_NAME_TEXT, SLOT_NAME_HTML),
}
_BODY_MARKERS = re.compile("|".join(_BODY_SLOTS))


def _slot(name: str) -> bytes:
    return b"\x00" + name.encode() + b"\x00"


def _qp_with_slots(text: str, part: int) -> bytes:
    """Encode ``text`` with each body marker replaced by its slot between soft breaks
    (``part`` 0 for the text part's slots, 1 for the HTML part's)."""
    text = text.replace("\r\n", "\n")
    out: list[bytes] = []
    position = 0
    for match in _BODY_MARKERS.finditer(text):
        slot = _BODY_SLOTS[match.group()][part]
        out += [qp(text[position : match.start()]), b"=\r\n", _slot(slot), b"=\r\n"]
        position = match.end()
    out.append(qp(text[position:]))
    # The line break before a boundary belongs to the boundary (RFC 2046): one more keeps the
    # text's own last line break.
    out.append(b"\r\n")
    return b"".join(out)


def build_template(
    rendered: RenderedEmail,
    *,
    mail_from: str,
    headers: Mapping[str, str] | None = None,
    mailto_unsubscribe: str | None = None,
    list_unsubscribe: bool = True,
    personal_mailto: bool = False,
) -> bytes:
    """Serialise ``rendered`` (text and HTML carrying the body markers) into a template.

    ``headers`` are the headers every recipient gets (List-Id, List-Unsubscribe-Post...);
    ``List-Unsubscribe`` is built here from the per-recipient URL and ``mailto_unsubscribe``,
    unless ``list_unsubscribe`` is false (a transactional email, not a newsletter).
    With ``personal_mailto`` the mailto's address is a per-recipient slot instead.
    """
    head = [
        header_line("From", mail_from),
        b"To: " + _slot(SLOT_TO) + b"\r\n",
        header_line("Subject", rendered.subject),
        b"Date: " + _slot(SLOT_DATE) + b"\r\n",
        b"Message-ID: " + _slot(SLOT_MESSAGE_ID) + b"\r\n",
    ]
    if list_unsubscribe:
        unsubscribe = b"List-Unsubscribe: <" + _slot(SLOT_UNSUBSCRIBE_HEADER) + b">"
        if personal_mailto:
            mailto = b"mailto:" + _slot(SLOT_UNSUBSCRIBE_MAILTO) + b"?subject=unsubscribe"
            unsubscribe += b",\r\n <" + mailto + b">"
        elif mailto_unsubscribe:
            unsubscribe += b",\r\n <" + mailto_unsubscribe.encode("ascii") + b">"
        head.append(unsubscribe + b"\r\n")
    for name, value in (headers or {}).items():
        if name.lower() == "list-unsubscribe":
            continue
        head.append(header_line(name, value))
    return multipart_alternative(
        head,
        rendered.language,
        _qp_with_slots(rendered.text, 0),
        _qp_with_slots(rendered.html, 1),
    )


class _DateCache:
    """``Date`` header text, formatted at most once a second (formatdate is not free)."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def now(self) -> bytes:
        second = int(time.time())
        if second != self._second:
            self._value = formatdate(second, usegmt=True).encode()
            self._second = second
        return self._value


_dates = _DateCache()


@dataclass(frozen=True)
class Recipient:
    """What differs per recipient. ``name`` goes in ``To`` and wherever the template greets
    the recipient by name."""

    address: str
    message_id: str
    unsubscribe_url: str = ""
    link_url: str = ""
    name: str | None = None
    # The personal List-Unsubscribe mailto address (templates built with personal_mailto).
    unsubscribe_mailto: str = ""


def _url_values(url: str) -> tuple[bytes, bytes]:
    """A URL quoted-printable for the text part and, HTML-escaped, for the HTML part."""
    text_url = qp(url)
    return text_url, (text_url if "&" not in url else qp(html.escape(url)))


class PreparedMessage:
    """A template split at its slots, ready to personalise many times (thread-safe)."""

    def __init__(self, template: bytes) -> None:
        self.template = template
        parts = template.split(b"\x00")
        # Even positions are literal bytes, odd positions slot names.
        self._literals: list[bytes] = parts[0::2]
        slot_names = [name.decode("ascii") for name in parts[1::2]]
        unknown = set(slot_names) - set(SLOTS)
        if unknown or len(self._literals) != len(slot_names) + 1:
            raise ValueError(f"not a message template (slots {sorted(unknown)})")
        self._slot_indexes = [_SLOT_INDEX[name] for name in slot_names]
        # Tells renderings apart in Message-IDs (same digest, same subscriber, same id).
        self.nonce = hashlib.blake2s(template, digest_size=5).hexdigest()
        self.domain = sender_domain(self._header_text(b"From") or "")

    def _header_text(self, name: bytes) -> str | None:
        for line in self.template.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
            if line.lower().startswith(name.lower() + b":"):
                return line.split(b":", 1)[1].strip().decode("ascii", "replace")
        return None

    def personalise(self, recipient: Recipient, date: bytes | None = None) -> bytes:
        """The complete message for one recipient, CRLF line ends, ready for SMTP DATA."""
        name = recipient.name or ""
        values = (
            to_header(recipient.address, name),
            recipient.message_id.encode("ascii"),
            date or _dates.now(),
            recipient.unsubscribe_url.encode("ascii"),
            *_url_values(recipient.unsubscribe_url),
            *_url_values(recipient.link_url),
            qp(name),
            qp(str(escape(name))),
            recipient.unsubscribe_mailto.encode("ascii"),
        )
        literals = self._literals
        out = [literals[0]]
        for position, slot_index in enumerate(self._slot_indexes, start=1):
            out.append(values[slot_index])
            out.append(literals[position])
        return b"".join(out)
