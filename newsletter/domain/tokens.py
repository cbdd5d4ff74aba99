"""Signed, expiring, purpose-bound tokens (itsdangerous).

One serializer per purpose, each with its own salt. New tokens are signed with the current key;
older keys from ``SECRET_KEY_FALLBACKS`` still verify, so keys rotate without breaking links.
Tokens carry ids and fingerprints, never raw personal data.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from ..config import TokenPurpose


class LinkState(enum.StrEnum):
    """What an emailed link (subscription or account) turned out to be, for the page shown."""

    OK = "ok"
    ALREADY_DONE = "already_done"  # the link's job was done before (unsubscribed already)
    EXPIRED = "expired"
    INVALID = "invalid"  # tampered, for another purpose, already used, replaced, or stale


@dataclass(frozen=True)
class TokenResult:
    """What a token turned out to be: ``data`` is set when the signature is good."""

    expired: bool
    invalid: bool
    data: Any = None

    @property
    def valid(self) -> bool:
        return not self.expired and not self.invalid


class TokenSigner:
    """Signs and verifies tokens for every purpose with one key list."""

    def __init__(self, secret_key: str, fallback_keys: list[str] | tuple[str, ...] = ()) -> None:
        # itsdangerous signs with the *last* key and verifies with all: the current key goes last.
        self._keys = [*fallback_keys, secret_key]
        self._secret_key = secret_key

    def _serializer(self, purpose: TokenPurpose) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self._keys, salt=purpose.salt)

    def sign(self, purpose: TokenPurpose, data: Any) -> str:
        return self._serializer(purpose).dumps(data)

    def verify(self, purpose: TokenPurpose, token: str) -> TokenResult:
        """Turn a token into ``(expired, invalid, data)``; never raises on bad input."""
        if not isinstance(token, str) or not token or len(token) > 1000:
            return TokenResult(expired=False, invalid=True)
        serializer = self._serializer(purpose)
        try:
            max_age = None if purpose.max_age is None else int(purpose.max_age.total_seconds())
            data = serializer.loads(token, max_age=max_age)
        except SignatureExpired as exc:
            # The signature is good, only too old: the payload can still name what to renew.
            payload = exc.payload
            try:
                data = serializer.load_payload(payload) if payload is not None else None
            except BadSignature:
                data = None
            return TokenResult(expired=True, invalid=False, data=data)
        except (BadSignature, ValueError, TypeError, UnicodeError):
            return TokenResult(expired=False, invalid=True)
        return TokenResult(expired=False, invalid=False, data=data)

    def fingerprint(self, *values: object) -> str:
        """A short keyed digest of what a token guards, so the token dies when that changes."""
        message = "\x1f".join(str(value) for value in values).encode()
        digest = hmac.new(self._secret_key.encode(), message, hashlib.sha256).hexdigest()
        return digest[:16]

    def fingerprint_matches(self, expected: str, *values: object) -> bool:
        """Check a fingerprint against the current key and every fallback key."""
        message = "\x1f".join(str(value) for value in values).encode()
        for key in self._keys:
            digest = hmac.new(key.encode(), message, hashlib.sha256).hexdigest()[:16]
            if hmac.compare_digest(digest, str(expected)):
                return True
        return False
