"""Header serialisation that can never put a line break inside a header value.

The email package parses a value given as text, decoding any RFC 2047 encoded word in it, and
some CPython releases (3.11.7 and 3.12.1 among them, CVE-2024-6923) fold a decoded CR LF out
raw, so ``=?utf-8?q?a=0D=0AReply-To=3A_x?=`` became a second header. Whatever the Python:

- free text holding encoded-word syntax, or a line break, is encoded here (one RFC 2047 text,
  read back literally), never given to the email package's parser;
- every folded header is checked to be one header (continuation lines start with white space)
  and is re-encoded as text, control characters turned to spaces, when it is not.
"""

from __future__ import annotations

import re
from email.header import Header
from email.policy import EmailPolicy

from ..config import ENCODED_WORD_PATTERN

ENCODED_WORD = re.compile(ENCODED_WORD_PATTERN)
# One header: a name, a first line, then only continuation lines; CRLF at the end.
_ONE_HEADER = re.compile(rb"[!-9;-~]+:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*\r\n")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Free-text headers: encoding the whole value as text is the right reading for them.
UNSTRUCTURED = frozenset(
    {"subject", "list-id", "precedence", "auto-submitted", "content-language", "comments",
     "keywords", "x-mailer"}
)  # fmt: skip


def is_single_header(folded: bytes) -> bool:
    """True when ``folded`` is exactly one header line plus its continuation lines."""
    return _ONE_HEADER.fullmatch(folded) is not None


def encode_text_header(name: str, value: str) -> bytes:
    """``name: value`` with the value RFC 2047-encoded as UTF-8 text (folded, CRLF): a reader
    shows exactly ``value`` (control characters as spaces), encoded-word syntax included."""
    text = _CONTROL.sub(" ", value)
    encoded = Header(text, "utf-8", header_name=name, maxlinelen=78).encode(linesep="\r\n")
    folded = f"{name}: {encoded}\r\n".encode("ascii")
    if not is_single_header(folded):  # pragma: no cover - Header only writes ASCII words
        raise ValueError(f"header {name} could not be encoded safely")
    return folded


def needs_text_encoding(name: str, value: str) -> bool:
    """Free text the email package would decode (encoded-word syntax) goes through
    ``encode_text_header`` instead."""
    return name.lower() in UNSTRUCTURED and "=?" in value


def checked(name: str, value: str, folded: bytes) -> bytes:
    """``folded`` when it is one header; otherwise ``value`` neutralised as encoded text
    (a structured header such as From that cannot be made one is refused)."""
    if is_single_header(folded):
        return folded
    if name.lower() in UNSTRUCTURED:
        return encode_text_header(name, value)
    raise ValueError(f"header {name} would hold a line break")


class SafePolicy(EmailPolicy):
    """The email package's policy, with every folded header checked by ``checked``: used to
    serialise ``EmailMessage`` objects (whose values were already decoded when set)."""

    def fold_binary(self, name, value):  # type: ignore[no-untyped-def]
        folded = super().fold_binary(name, value)
        if self.linesep != "\r\n":
            return folded
        return checked(name, str(value), folded)


# The SMTP and SMTPUTF8 policies of ``email.policy``, checked.
SAFE_SMTP = SafePolicy(linesep="\r\n")
SAFE_SMTPUTF8 = SAFE_SMTP.clone(utf8=True)
