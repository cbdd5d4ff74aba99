"""Envelope senders per message (VERP) and the personal ``List-Unsubscribe`` mailto.

With ``BOUNCE_ADDRESS`` (``bounces@d``) every digest delivery goes out as
``MAIL FROM:<bounces+d-…@d>`` and every outbox message as ``bounces+o-…@d``, so a bounce names
exactly what bounced; the mailto of ``List-Unsubscribe`` is ``bounces+u-…@d``, naming the
subscriber, so a forged ``From`` cannot unsubscribe someone else. Without it, the envelope
sender is ``MAIL_FROM``'s address, as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..domain.return_paths import ReturnPathCodec
from ..mail.message import envelope_sender


class ReturnPaths:
    """Return paths of one app's configuration (build once per sending pass or thread)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.base: str = config.get("BOUNCE_ADDRESS") or ""
        self.default = envelope_sender(config["MAIL_FROM"])
        self.codec = ReturnPathCodec.from_config(config) if self.base else None

    @property
    def personal(self) -> bool:
        """True when each message gets its own return path and unsubscribe mailto."""
        return self.codec is not None

    def delivery_sender(self, delivery_id: int) -> str:
        """``MAIL FROM`` of a digest delivery."""
        if self.codec is None:
            return self.default
        return self.codec.address(self.base, "delivery", delivery_id)

    def outbox_sender(self, outbox_id: int) -> str:
        """``MAIL FROM`` of an outbox message (confirmations, account mail...)."""
        if self.codec is None:
            return self.default
        return self.codec.address(self.base, "outbox", outbox_id)

    def unsubscribe_mailbox(self, subscriber_id: int) -> str | None:
        """The subscriber's own unsubscribe address, or None without a bounce address."""
        if self.codec is None:
            return None
        return self.codec.address(self.base, "subscriber", subscriber_id)
