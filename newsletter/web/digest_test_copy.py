"""A test copy of a digest to one address, recorded in the audit log (console and API)."""

from __future__ import annotations

from flask import current_app

from ..delivery.digest_previews import queue_test_send
from ..domain.addresses import Address
from ..domain.audit import address_hash
from ..models import Digest
from .auth import audit


def send_test_copy(digest: Digest, address: Address) -> None:
    """Queue the copy and audit it; the caller commits both together."""
    queue_test_send(digest, address.email)
    # The address by keyed hash only: the log is never rewritten, an erasure could
    # not take it out again.
    audit(
        "digest.test_send",
        "digest",
        digest.id,
        {"to_hash": address_hash(address.key, current_app.config["SECRET_KEY"])},
    )
