"""An SMTP transport for pre-serialised bulk mail: the digest sender's hot path.

``smtplib.SMTP.sendmail`` parses both addresses with the email package and runs two regular
expressions over every message (line ends, dot-stuffing). Digest messages come out of
``mail.prepared`` with CRLF line ends already, so this transport checks that cheaply, dot-stuffs
with one ``bytes.replace`` (C) when needed, writes the SMTP commands itself, and pipelines
MAIL, RCPT and DATA in one write when the server offers PIPELINING (RFC 2920), which halves the
round trips per message. Anything unusual (internationalised addresses, odd bytes) goes through
the ordinary ``SmtpTransport`` path, which it extends.
"""

from __future__ import annotations

import re
import smtplib
from pathlib import Path

from .transport import (
    Accepted,
    DeliveryError,
    MessageSigner,
    SigningTransport,
    SmtpTransport,
    Transport,
    open_transport,
    parse_mail_url,
)

# Plain ASCII addresses with nothing that could break out of an SMTP command.
_SIMPLE_ADDRESS = re.compile(rb"[!#-;=?-~]+@[A-Za-z0-9.\-\[\]:]+")


def _reply_text(response: bytes) -> str:
    return response.decode("utf-8", "replace")


class BulkSmtpTransport(SmtpTransport):
    """``SmtpTransport`` with a fast path for CRLF-clean messages to ASCII addresses."""

    def send(self, sender: str, recipient: str, data: bytes) -> Accepted:
        return self.send_prepared(sender, recipient, data, crlf_checked=False)

    def send_prepared(
        self, sender: str, recipient: str, data: bytes, *, crlf_checked: bool = True
    ) -> Accepted:
        """Send ``data``; ``crlf_checked`` says every line already ends with CRLF (as
        ``mail.prepared`` guarantees), which spares two scans of the message."""
        sender_bytes = sender.encode("ascii", "replace")
        recipient_bytes = recipient.encode("ascii", "replace")
        if (
            not recipient.isascii()
            or not _SIMPLE_ADDRESS.fullmatch(recipient_bytes)
            or not (sender == "" or _SIMPLE_ADDRESS.fullmatch(sender_bytes))
            or not data.endswith(b"\r\n")
            or not (crlf_checked or data.count(b"\n") == data.count(b"\r\n"))
        ):
            return super().send(sender, recipient, data)
        if data.startswith(b"."):
            data = b"." + data
        if b"\n." in data:
            data = data.replace(b"\r\n.", b"\r\n..")
        if self._connection is None:
            self._connection = self._connect()
        connection = self._connection
        envelope = b"MAIL FROM:<" + sender_bytes + b">\r\nRCPT TO:<" + recipient_bytes + b">\r\n"
        try:
            if connection.has_extn("pipelining"):
                connection.send(envelope + b"DATA\r\n")
                mail_code, mail_reply = connection.getreply()
                rcpt_code, rcpt_reply = connection.getreply()
                data_code, data_reply = connection.getreply()
            else:
                connection.send(envelope[: envelope.index(b"\r\n") + 2])
                mail_code, mail_reply = connection.getreply()
                rcpt_code, rcpt_reply, data_code, data_reply = 0, b"", 0, b""
                if mail_code == 250:
                    connection.send(envelope[envelope.index(b"\r\n") + 2 :])
                    rcpt_code, rcpt_reply = connection.getreply()
                    if rcpt_code in (250, 251):
                        connection.send(b"DATA\r\n")
                        data_code, data_reply = connection.getreply()
            refused = None
            if mail_code != 250:
                refused = (mail_code, mail_reply)
            elif rcpt_code not in (250, 251):
                refused = (rcpt_code, rcpt_reply)
            elif data_code != 354:
                refused = (data_code, data_reply)
            if refused is not None:
                if data_code == 354:
                    # Pipelined DATA was accepted although the envelope was not: end it empty.
                    connection.send(b".\r\n")
                    connection.getreply()
                self._reset()
                code, reply = refused
                raise DeliveryError(
                    f"{code} {_reply_text(reply)}", temporary=not 500 <= code < 600, code=code
                )
            connection.send(data + b".\r\n")
            code, reply = connection.getreply()
        except (OSError, smtplib.SMTPException) as exc:
            self._drop()
            raise DeliveryError(f"SMTP connection lost: {exc}", temporary=True) from exc
        if code != 250:
            raise DeliveryError(
                f"{code} {_reply_text(reply)}", temporary=not 500 <= code < 600, code=code
            )
        return Accepted(code=code, response=_reply_text(reply))


def open_bulk_transport(url: str, signer: MessageSigner | None = None) -> Transport:
    """The bulk transport for ``smtp(s)://`` URLs, the ordinary one otherwise (files); with
    ``signer``, every message is signed (DKIM) on its way out."""
    target = parse_mail_url(url)
    if isinstance(target, Path):
        return open_transport(url, signer)
    transport = BulkSmtpTransport(target)
    return transport if signer is None else SigningTransport(transport, signer)
