"""Keys derived from the site's signing keys, one family per purpose."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self


class DerivedKeys:
    """One HMAC key per signing key (the current key first, then every fallback), derived with
    the subclass's ``SALT``: a key rotation keeps what the older keys made readable, and one
    purpose's keys can never verify another's."""

    SALT: ClassVar[str]

    def __init__(self, secret_key: str, fallback_keys: Sequence[str] = ()) -> None:
        self._keys = [
            hmac.new(key.encode(), self.SALT.encode(), hashlib.sha256).digest()
            for key in (secret_key, *fallback_keys)
        ]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        """Keys from a Flask-style config (``SECRET_KEY``, ``SECRET_KEY_FALLBACKS``)."""
        return cls(config["SECRET_KEY"], config.get("SECRET_KEY_FALLBACKS") or [])
