"""``build_message_bytes`` writes the same email as ``build_message`` + ``message_bytes``,
only faster: same headers once parsed, same text and HTML once decoded, valid line lengths."""

from __future__ import annotations

import email
from email.policy import default as default_policy

import pytest

from newsletter.mail.message import build_message, build_message_bytes, message_bytes
from newsletter.mail.render import RenderedEmail

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
RECIPIENTS = [
    "reader@example.org",
    '"Dupont, Élodie" <elodie@example.org>',
    "José <josé@exemple.fr>",
    "first.last+news@mail.example.org",
    "o'brien@example.org",
    '"two words"@example.org',
    "a..b@example.org",
]
HEADERS = {
    "List-Unsubscribe": "<https://news.example.org/unsubscribe/" + "t" * 120 + ">",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    "Auto-Submitted": "auto-generated",
}


def parsed(data: bytes):
    return email.message_from_bytes(data, policy=default_policy)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("to", RECIPIENTS)
def test_fast_serialisation_matches_the_email_package(case, to):
    rendered = CASES[case]
    sender = "Newsroom <news@example.org>"
    slow = parsed(
        message_bytes(build_message(rendered, mail_from=sender, to=to, extra_headers=HEADERS))
    )
    data = build_message_bytes(rendered, mail_from=sender, to=to, extra_headers=HEADERS)
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
