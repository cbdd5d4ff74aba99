"""``build_message_bytes`` writes the same email as ``build_message`` + ``message_bytes``,
only faster: same headers once parsed, same text and HTML once decoded, valid line lengths."""

from __future__ import annotations

import email
from email.policy import default as default_policy

import pytest

from newsletter.mail.message import build_message_bytes, message_bytes
from newsletter.mail.prepared import PreparedMessage, Recipient, build_template
from newsletter.mail.render import RenderedEmail
from tests.support.reference_mail import build_message, recipient_header

CASES = {
    "ascii": RenderedEmail(
        subject="Confirm your subscription",
        text="Hello,\n\nConfirm: https://news.example.org/confirm/abc.def\n",
        html="<p>Hello</p><p><a href='https://news.example.org/confirm/abc'>Confirm</a></p>",
        language="en",
    ),
    "french, long lines, trailing spaces, dots": RenderedEmail(
        subject="Confirmez votre abonnement — Communiqués de presse de l'été",
        text=(
            "Bonjour Élodie,   \n.\n.leading dot\nFrom the start\n"
            + "é" * 200
            + "\n= sign and tab\t\n"
            + "x" * 300
        ),
        html="<p>" + "à bientôt " * 80 + "</p>\r\n<p>=3D</p>",
        language="fr",
    ),
    "long subject": RenderedEmail(
        subject="A subject " * 20, text="t", html="<p>h</p>", language="en"
    ),
}
# (address, display name)
RECIPIENTS = [
    ("reader@example.org", None),
    ("elodie@example.org", "Dupont, Élodie"),
    ("josé@exemple.fr", "José"),
    ("first.last+news@mail.example.org", None),
    ("o'brien@example.org", "O'Brien"),
    ('"two words"@example.org', None),
    ("a..b@example.org", None),
]
HEADERS = {
    "List-Unsubscribe": "<https://news.example.org/unsubscribe/" + "t" * 120 + ">",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    "Auto-Submitted": "auto-generated",
}


def parsed(data: bytes):
    # Raw UTF-8 headers (SMTPUTF8, RFC 6532) read back as text.
    return email.message_from_string(data.decode(), policy=default_policy)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize(("to", "name"), RECIPIENTS)
def test_fast_serialisation_matches_the_email_package(case, to, name):
    rendered = CASES[case]
    sender = "Newsroom <news@example.org>"
    slow = parsed(
        message_bytes(
            build_message(
                rendered,
                mail_from=sender,
                to=recipient_header(to, name),
                extra_headers=HEADERS,
            )
        )
    )
    data = build_message_bytes(
        rendered, mail_from=sender, to=to, to_name=name, extra_headers=HEADERS
    )
    fast = parsed(data)

    for name in ("From", "To", "Subject", "Content-Language", "MIME-Version", *HEADERS):
        assert str(fast[name]) == str(slow[name]), name
    assert fast["Date"] and fast["Message-ID"].endswith("@example.org>")
    assert fast.get_content_type() == slow.get_content_type() == "multipart/alternative"
    fast_parts = [(p.get_content_type(), p.get_content()) for p in fast.iter_parts()]
    slow_parts = [(p.get_content_type(), p.get_content()) for p in slow.iter_parts()]
    assert fast_parts == slow_parts
    assert not fast.defects and all(not part.defects for part in fast.iter_parts())
    # SMTP line limits: 78 preferred for headers, 998 hard; quoted-printable keeps 76.
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    body = data.split(b"\r\n\r\n", 1)[1]
    assert all(len(line) <= 76 for line in body.split(b"\r\n"))
    assert b"\n" not in data.replace(b"\r\n", b"")


def test_header_with_a_line_break_is_refused():
    rendered = RenderedEmail(
        subject="x\r\nBcc: victim@example.org", text="t", html="h", language="en"
    )
    with pytest.raises(ValueError):
        build_message_bytes(rendered, mail_from="n@example.org", to="a@example.org")


HOSTILE_NAMES = [
    "=?utf-8?q?x?=",  # would read as an RFC 2047 encoded word
    "=?iso-8859-1?q?Service_client?= (official)",
    'Back\\slash "quoted", <angle> @ (paren)',
    "Zoë " + "é" * 190,  # long: folded into several encoded words
    "plain name",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
@pytest.mark.parametrize("address", ["reader@example.org", "josé@exemple.fr"])
def test_display_names_read_back_as_typed_in_both_serialisers(name, address):
    """The outbox's serialiser and the prepared (digest, confirmation) one write ``To`` the
    same way; a reader's mail program must show the name the subscriber typed."""
    rendered = CASES["ascii"]
    direct = build_message_bytes(rendered, mail_from="n@example.org", to=address, to_name=name)
    prepared = PreparedMessage(build_template(rendered, mail_from="n@example.org"))
    substituted = prepared.personalise(
        Recipient(address=address, name=name, message_id="<m@example.org>")
    )
    for data in (direct, substituted):
        header = parsed(data)["To"]
        # Python's parser predates RFC 6532 and flags any UTF-8 local part; nothing else.
        assert {type(defect).__name__ for defect in header.defects} <= (
            set() if address.isascii() else {"NonASCIILocalPartDefect"}
        )
        [mailbox] = header.addresses
        assert (mailbox.display_name, mailbox.addr_spec) == (name, address)
        head = data.split(b"\r\n\r\n", 1)[0]
        assert all(len(line) <= 998 for line in head.split(b"\r\n"))
