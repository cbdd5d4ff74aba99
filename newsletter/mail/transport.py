"""Where mail goes: an SMTP server (reused connections) or a folder of ``.eml`` files.

Every transport answers the same way: ``send`` returns the server's answer or raises
``DeliveryError`` saying whether trying again later could help.
"""

from __future__ import annotations

import contextlib
import os
import smtplib
import ssl
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit


class DeliveryError(Exception):
    """A message was not accepted. ``temporary`` means a later try may succeed."""

    def __init__(self, message: str, *, temporary: bool, code: int | None = None) -> None:
        super().__init__(message)
        self.temporary = temporary
        self.code = code


@dataclass(frozen=True)
class Accepted:
    code: int
    response: str


class Transport(Protocol):
    def send(self, sender: str, recipient: str, data: bytes) -> Accepted: ...

    def close(self) -> None: ...


class MessageSigner(Protocol):
    """Adds a signature to finished message bytes (``mail.dkim.DkimSigner``)."""

    def sign(self, message: bytes) -> bytes: ...


class SigningTransport:
    """A transport that signs each message just before handing it to the one it wraps: every
    message leaves signed, whichever path built it (outbox, digest, test send)."""

    def __init__(self, inner: Transport, signer: MessageSigner) -> None:
        self.inner = inner
        self.signer = signer

    def send(self, sender: str, recipient: str, data: bytes) -> Accepted:
        return self.inner.send(sender, recipient, self.signer.sign(data))

    def send_prepared(self, sender: str, recipient: str, data: bytes) -> Accepted:
        """The bulk transport's fast path (CRLF already checked), signed."""
        send = getattr(self.inner, "send_prepared", self.inner.send)
        return send(sender, recipient, self.signer.sign(data))

    def close(self) -> None:
        self.inner.close()


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    use_ssl: bool = False
    starttls: bool = False
    timeout: float = 30.0
    # A private CA to trust (e.g. an internal relay); the system store is used otherwise.
    cafile: str | None = None

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.cafile)


class SmtpTransport:
    """One SMTP connection, opened on first use and reused until closed or broken."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._connection: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        connection: smtplib.SMTP | None = None
        try:
            if s.use_ssl:
                connection = smtplib.SMTP_SSL(
                    s.host, s.port, timeout=s.timeout, context=s.tls_context()
                )
            else:
                connection = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            connection.ehlo()
            if s.starttls:
                connection.starttls(context=s.tls_context())
                connection.ehlo()
            if s.username:
                connection.login(s.username, s.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            _close_quietly(connection)
            raise DeliveryError(f"SMTP login refused: {exc}", temporary=True) from exc
        except (OSError, smtplib.SMTPException) as exc:
            _close_quietly(connection)
            raise DeliveryError(f"SMTP server unreachable: {exc}", temporary=True) from exc
        return connection

    def send(self, sender: str, recipient: str, data: bytes) -> Accepted:
        if self._connection is None:
            self._connection = self._connect()
        options: list[str] = []
        if not recipient.isascii():
            if not self._connection.has_extn("smtputf8"):
                raise DeliveryError(
                    "server does not accept internationalised addresses (no SMTPUTF8)",
                    temporary=False,
                )
            options = ["SMTPUTF8", "BODY=8BITMIME"]
        try:
            self._connection.mail(sender, options)
            code, response = self._connection.rcpt(recipient)
            if code not in (250, 251):
                self._reset()
                raise DeliveryError(
                    f"{code} {_text(response)}", temporary=400 <= code < 500, code=code
                )
            code, response = self._connection.data(data)
            if code != 250:
                raise DeliveryError(
                    f"{code} {_text(response)}", temporary=400 <= code < 500, code=code
                )
        except smtplib.SMTPResponseException as exc:
            self._reset()
            code = exc.smtp_code
            raise DeliveryError(
                f"{code} {_text(exc.smtp_error)}", temporary=not 500 <= code < 600, code=code
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            self._drop()
            raise DeliveryError(f"SMTP connection lost: {exc}", temporary=True) from exc
        return Accepted(code=code, response=_text(response))

    def _reset(self) -> None:
        try:
            if self._connection is not None:
                self._connection.rset()
        except (OSError, smtplib.SMTPException):
            self._drop()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        _close_quietly(connection)

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.quit()
            except (OSError, smtplib.SMTPException):
                connection.close()


class FileTransport:
    """Writes each message as one ``.eml`` file: the embedded default for development."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, sender: str, recipient: str, data: bytes) -> Accepted:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            name = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:12]}.eml"
            temporary = self.directory / f".{name}.tmp"
            temporary.write_bytes(data.replace(b"\r\n", b"\n"))
            os.replace(temporary, self.directory / name)
        except OSError as exc:
            raise DeliveryError(f"cannot write mail file: {exc}", temporary=True) from exc
        return Accepted(code=250, response=f"written to {name}")

    def close(self) -> None:
        pass


def _close_quietly(connection: smtplib.SMTP | None) -> None:
    if connection is not None:
        with contextlib.suppress(OSError):
            connection.close()


def _text(response: bytes | str) -> str:
    if isinstance(response, bytes):
        return response.decode("utf-8", "replace")
    return str(response)


def parse_mail_url(url: str) -> SmtpSettings | Path:
    """``smtp://[user:pass@]host:port[?starttls=true]``, ``smtps://...`` or ``file:///dir``.

    Optional query keys: ``timeout`` (seconds), ``cafile`` (a CA bundle to trust).
    """
    parts = urlsplit(url)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError(f"unsupported mail URL scheme: {parts.scheme!r}")
    query = parse_qs(parts.query)
    starttls = query.get("starttls", ["false"])[0].lower() in ("1", "true", "yes")
    use_ssl = parts.scheme == "smtps"
    return SmtpSettings(
        host=parts.hostname or "localhost",
        port=parts.port or (465 if use_ssl else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        use_ssl=use_ssl,
        starttls=starttls,
        timeout=float(query.get("timeout", ["30"])[0]),
        cafile=query.get("cafile", [None])[0],
    )


def open_transport(url: str, signer: MessageSigner | None = None) -> Transport:
    """A fresh transport for ``url``; each sending thread opens its own. With ``signer``,
    every message is signed (DKIM) on its way out."""
    target = parse_mail_url(url)
    transport: Transport = (
        FileTransport(target) if isinstance(target, Path) else SmtpTransport(target)
    )
    return transport if signer is None else SigningTransport(transport, signer)
