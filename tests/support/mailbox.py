"""A real SMTP server for tests (aiosmtpd on loopback) and helpers to read what arrived."""

from __future__ import annotations

import email
import re
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy

from aiosmtpd.controller import Controller

URL_RE = re.compile(r"https?://[^\s<>\"')]+")


@dataclass
class ReceivedMessage:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    # When it arrived (monotonic clock): rate checks measure at the server (issue 10).
    received_at: float = field(default_factory=time.monotonic)

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=default_policy)  # type: ignore[return-value]

    @property
    def to(self) -> str:
        return self.rcpt_tos[0]

    def part(self, subtype: str) -> str:
        for part in self.message.walk():
            if part.get_content_type() == f"text/{subtype}":
                return part.get_content()
        raise AssertionError(f"no text/{subtype} part")

    @property
    def text(self) -> str:
        return self.part("plain")

    @property
    def html(self) -> str:
        return self.part("html")

    def links(self) -> list[str]:
        return URL_RE.findall(self.text)

    def header(self, name: str) -> str | None:
        value = self.message[name]
        return None if value is None else str(value)


class Mailbox:
    def __init__(self) -> None:
        self._messages: list[ReceivedMessage] = []
        self._lock = threading.Lock()

    def add(self, message: ReceivedMessage) -> None:
        with self._lock:
            self._messages.append(message)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._lock:
            return list(self._messages)

    def to(self, address: str) -> list[ReceivedMessage]:
        return [
            m for m in self.messages if address.casefold() in (r.casefold() for r in m.rcpt_tos)
        ]

    def wait_for(self, count: int, timeout: float = 30.0) -> list[ReceivedMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.messages) >= count:
                return self.messages
            time.sleep(0.02)
        raise AssertionError(f"expected {count} messages, got {len(self.messages)}")


class _Handler:
    def __init__(self, mailbox: Mailbox, sink: SmtpSink) -> None:
        self.mailbox = mailbox
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        answer = self.sink.rcpt_answers.get(address.casefold())
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.mailbox.add(
            ReceivedMessage(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                data=envelope.original_content or envelope.content,
            )
        )
        return "250 Message accepted for delivery"


class SmtpSink:
    """aiosmtpd on 127.0.0.1:``port``; can be stopped and started again on the same port."""

    def __init__(self, port: int, **smtp_options: object) -> None:
        self.port = port
        self.smtp_options = smtp_options  # passed to aiosmtpd's SMTP (TLS, AUTH...)
        self.mailbox = Mailbox()
        # Per-recipient answers to RCPT, e.g. {"gone@example.org": "550 No such user"}.
        self.rcpt_answers: dict[str, str] = {}
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(
            _Handler(self.mailbox, self),
            hostname="127.0.0.1",
            port=self.port,
            enable_SMTPUTF8=True,
            decode_data=False,
            **self.smtp_options,
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def clear(self) -> None:
        self.mailbox.clear()
        self.rcpt_answers.clear()
