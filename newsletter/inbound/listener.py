"""The SMTP/LMTP listener the site's MTA forwards bounce and unsubscribe addresses to.

It answers 250 only once the message is stored (committed); processing follows, and a failure
there leaves the stored row for a retry. A database that cannot store answers 451 so the MTA
keeps the message and tries again. (The shape of Mailman's LMTP runner.)
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP
from flask import Flask

from ..config import INBOUND_MAX_MESSAGE_BYTES
from ..extensions import db
from .processor import process_inbound, store_inbound

log = logging.getLogger(__name__)


class InboundHandler:
    """aiosmtpd handler: store (in a thread, the database is synchronous), then process."""

    def __init__(self, app: Flask, source: str) -> None:
        self.app = app
        self.source = source

    def _store_and_process(self, mail_from: str, rcpt_tos: list[str], data: bytes) -> int:
        with self.app.app_context():
            try:
                message_id = store_inbound(
                    self.source, data, envelope_from=mail_from, recipients=rcpt_tos
                )
            finally:
                db.session.remove()
        with self.app.app_context():
            try:
                process_inbound(message_id)
            except Exception:  # noqa: BLE001 - stored; the worker retries it
                log.exception("inbound %s left for a retry", message_id)
            finally:
                db.session.remove()
        return message_id

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content or b""
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(
                None,
                self._store_and_process,
                envelope.mail_from or "",
                list(envelope.rcpt_tos),
                data,
            )
        except Exception:  # noqa: BLE001 - not stored: the MTA must keep it and retry
            log.exception("inbound message could not be stored")
            reply = "451 4.3.0 Could not store the message, try again later"
        else:
            reply = "250 2.0.0 Message stored"
        if isinstance(server, LMTP):
            # LMTP answers once per recipient after DATA (RFC 2033 §4.2).
            return "\r\n".join(reply for _ in envelope.rcpt_tos)
        return reply


class InboundController(Controller):
    """aiosmtpd controller speaking SMTP or LMTP."""

    def __init__(self, app: Flask, host: str, port: int, *, lmtp: bool = False) -> None:
        self.lmtp = lmtp
        super().__init__(
            InboundHandler(app, "lmtp" if lmtp else "smtp"),
            hostname=host,
            port=port,
            data_size_limit=INBOUND_MAX_MESSAGE_BYTES,
            decode_data=False,
        )

    def factory(self) -> SMTP:
        server_class = LMTP if self.lmtp else SMTP
        return server_class(self.handler, **self.SMTP_kwargs)
