"""The suppression list: addresses that hard-bounced or complained are never mailed again.

Only a keyed hash (HMAC-SHA256 of the case-folded address, key derived from ``SECRET_KEY`` with
its own salt) is stored: erasing a subscriber erases the address, and the list still refuses it
if it comes back. Hashes made with an older key (``SECRET_KEY_FALLBACKS``) still match.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from ..config import SUPPRESSION_SALT
from ..extensions import db
from ..models import Subscriber, Suppression, utcnow
from .derived_keys import DerivedKeys


class SuppressionKeys(DerivedKeys):
    """Hashes addresses with the current key (and every fallback key, to look them up)."""

    SALT = SUPPRESSION_SALT

    def hashes(self, email_key: str) -> list[str]:
        """The address's hash under every key, current key first."""
        data = email_key.casefold().encode()
        return [hmac.new(key, data, hashlib.sha256).hexdigest() for key in self._keys]

    def current(self, email_key: str) -> str:
        return self.hashes(email_key)[0]


def is_suppressed(keys: SuppressionKeys, email_key: str) -> bool:
    """True when the address is on the list (one indexed lookup)."""
    return (
        db.session.execute(
            select(Suppression.id).where(Suppression.address_hash.in_(keys.hashes(email_key)))
        ).first()
        is not None
    )


def suppressed_keys(keys: SuppressionKeys, email_keys: Iterable[str]) -> set[str]:
    """Which of ``email_keys`` are on the list (for imports and sending: one query a chunk)."""
    by_hash: dict[str, str] = {}
    for email_key in email_keys:
        for digest in keys.hashes(email_key):
            by_hash[digest] = email_key
    found: set[str] = set()
    hashes = list(by_hash)
    for start in range(0, len(hashes), 500):
        chunk = hashes[start : start + 500]
        for digest in db.session.scalars(
            select(Suppression.address_hash).where(Suppression.address_hash.in_(chunk))
        ):
            found.add(by_hash[digest])
    return found


def suppression_reasons(keys: SuppressionKeys, email_keys: Iterable[str]) -> dict[str, str]:
    """The reason each of ``email_keys`` that is on the list was suppressed for (the outbox
    needs it: account mail is stopped by some reasons only)."""
    by_hash: dict[str, str] = {}
    for email_key in email_keys:
        for digest in keys.hashes(email_key):
            by_hash[digest] = email_key
    found: dict[str, str] = {}
    hashes = list(by_hash)
    for start in range(0, len(hashes), 500):
        chunk = hashes[start : start + 500]
        for digest, reason in db.session.execute(
            select(Suppression.address_hash, Suppression.reason).where(
                Suppression.address_hash.in_(chunk)
            )
        ):
            found[by_hash[digest]] = reason
    return found


def suppress(keys: SuppressionKeys, email_key: str, reason: str, detail: str | None) -> bool:
    """Put an address on the list; False when it was there already (first reason kept)."""
    if is_suppressed(keys, email_key):
        return False
    db.session.add(
        Suppression(
            address_hash=keys.current(email_key),
            reason=reason,
            detail=(detail or "")[:300] or None,
            created_at=utcnow(),
        )
    )
    db.session.flush()
    return True


def lift(suppression_id: int) -> bool:
    """Take an entry off the list (staff decided the address may be mailed again)."""
    row = db.session.get(Suppression, suppression_id)
    if row is None:
        return False
    db.session.delete(row)
    return True


@dataclass(frozen=True)
class SuppressionEntry:
    """A row of the console's list: the address only while a subscriber row still holds it."""

    id: int
    address_hash: str
    reason: str
    detail: str | None
    created_at: datetime
    address: str | None


def suppression_entries(
    keys: SuppressionKeys, limit: int, offset: int = 0
) -> list[SuppressionEntry]:
    """Newest first. Addresses are found back by hashing the subscribers that are no longer
    confirmed (bounced, unsubscribed): the only rows a suppressed address can belong to."""
    rows = db.session.scalars(
        select(Suppression).order_by(Suppression.created_at.desc(), Suppression.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    if not rows:
        return []
    wanted = {row.address_hash for row in rows}
    known: dict[str, str] = {}
    candidates = db.session.execute(
        select(Subscriber.email, Subscriber.email_key).where(
            Subscriber.status.in_(("bounced", "unsubscribed"))
        )
    )
    for email, email_key in candidates:
        for digest in keys.hashes(email_key):
            if digest in wanted:
                known[digest] = email
    return [
        SuppressionEntry(
            row.id, row.address_hash, row.reason, row.detail, row.created_at,
            known.get(row.address_hash),
        )
        for row in rows
    ]
