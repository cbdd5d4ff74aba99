"""Two mail streams: account mail ("transactional") and newsletter mail.

Each stream can have its own From, return path and relay, and every message names its stream
in ``Feedback-ID`` so a provider's complaint figures (Gmail's Postmaster Tools, for one) come
split by stream. Subscription confirmations travel as account mail (see ``config``).
Every transport opened here signs with DKIM when the settings ask for it.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import current_app

from ..config import NEWSLETTER_OUTBOX_KINDS, STREAM_NEWSLETTER, STREAM_TRANSACTIONAL
from ..mail.bulk import open_bulk_transport
from ..mail.dkim import DkimSigner, signer_from_settings
from ..mail.message import envelope_sender, sender_domain
from ..mail.transport import Transport, open_transport


def stream_for_kind(kind: str) -> str:
    """The stream of an outbox message kind."""
    return STREAM_NEWSLETTER if kind in NEWSLETTER_OUTBOX_KINDS else STREAM_TRANSACTIONAL


def stream_mail_from(stream: str, settings: Mapping[str, object] | None = None) -> str:
    """``From`` of a stream: ``TRANSACTIONAL_MAIL_FROM`` for account mail when set."""
    config = current_app.config if settings is None else settings
    if stream == STREAM_TRANSACTIONAL and config.get("TRANSACTIONAL_MAIL_FROM"):
        return str(config["TRANSACTIONAL_MAIL_FROM"])
    return str(config["MAIL_FROM"])


def stream_mail_url(stream: str, settings: Mapping[str, object] | None = None) -> str:
    config = current_app.config if settings is None else settings
    if stream == STREAM_TRANSACTIONAL:
        return str(config.get("TRANSACTIONAL_MAIL_URL") or config["MAIL_URL"])
    return str(config["MAIL_URL"])


def feedback_id(campaign: str, stream: str, settings: Mapping[str, object] | None = None) -> str:
    """``Feedback-ID: campaign:stream:sender`` (Gmail's format: the last field identifies the
    sender, the others are what complaint reports are grouped by)."""
    config = current_app.config if settings is None else settings
    sender = str(config.get("DKIM_DOMAIN") or "") or sender_domain(str(config["MAIL_FROM"]))
    return f"{campaign}:{stream}:{sender}"


def dkim_signer(settings: Mapping[str, object] | None = None) -> DkimSigner | None:
    """The configured DKIM signer, or None when DKIM is off."""
    return signer_from_settings(current_app.config if settings is None else settings)


def open_bulk_stream_transport(settings: Mapping[str, object] | None = None) -> Transport:
    """The digest sender's transport: the newsletter relay, signed when DKIM is on."""
    config = current_app.config if settings is None else settings
    return open_bulk_transport(stream_mail_url(STREAM_NEWSLETTER, config), dkim_signer(config))


class StreamTransports:
    """One transport per stream, opened on first use; a single one when both streams share
    a relay. What the outbox worker sends through."""

    def __init__(self, settings: Mapping[str, object] | None = None) -> None:
        self.settings = dict(current_app.config if settings is None else settings)
        self._signer = dkim_signer(self.settings)
        self._by_url: dict[str, Transport] = {}

    @classmethod
    def wrapping(cls, transport: Transport) -> StreamTransports:
        """Every stream through one given transport (tests, scripts)."""
        transports = cls()
        for stream in (STREAM_TRANSACTIONAL, STREAM_NEWSLETTER):
            transports._by_url[stream_mail_url(stream, transports.settings)] = transport
        return transports

    def transport(self, stream: str) -> Transport:
        url = stream_mail_url(stream, self.settings)
        transport = self._by_url.get(url)
        if transport is None:
            transport = self._by_url[url] = open_transport(url, self._signer)
        return transport

    def sender(self, stream: str) -> str:
        """The envelope sender (return path) of a stream."""
        return envelope_sender(stream_mail_from(stream, self.settings))

    def close(self) -> None:
        for transport in {id(t): t for t in self._by_url.values()}.values():
            transport.close()
        self._by_url.clear()
