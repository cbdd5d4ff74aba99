"""VERP return paths: ``bounces+TOKEN@domain``, the token naming what a bounce is about.

A token is ``<kind>-<id in base32>-<truncated HMAC>``, all lower case: some MTAs lower-case
local parts, and base32 survives that. The HMAC key is derived from ``SECRET_KEY`` with its own
salt, so nobody without the key can make a token for another delivery or subscriber (a forged
``From`` or a guessed id unsubscribes nobody). Older keys from ``SECRET_KEY_FALLBACKS`` still
verify, like links.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..config import RETURN_PATH_KINDS, RETURN_PATH_MAC_CHARS, RETURN_PATH_SALT
from .derived_keys import DerivedKeys

_TOKEN_RE = re.compile(r"^([a-z])-([a-z2-7]{1,14})-([a-z2-7]+)$")


@dataclass(frozen=True)
class ReturnPathToken:
    """What a verified token names: ``kind`` is one of ``RETURN_PATH_KINDS``' values."""

    kind: str
    id: int


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def _id_text(value: int) -> str:
    return _b32(value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def _id_value(text: str) -> int | None:
    padded = text.upper() + "=" * (-len(text) % 8)
    try:
        raw = base64.b32decode(padded)
    except ValueError:
        return None
    return int.from_bytes(raw, "big") if raw else None


class ReturnPathCodec(DerivedKeys):
    """Makes and reads return-path tokens with one key list (current key first)."""

    SALT = RETURN_PATH_SALT

    def _mac(self, key: bytes, letter: str, ident: str) -> str:
        digest = hmac.new(key, f"{letter}-{ident}".encode(), hashlib.sha256).digest()
        return _b32(digest)[:RETURN_PATH_MAC_CHARS]

    def token(self, kind: str, ident: int) -> str:
        """A token for ``kind`` (``delivery``, ``outbox``, ``subscriber``) and a row id."""
        letter = next(k for k, v in RETURN_PATH_KINDS.items() if v == kind)
        text = _id_text(ident)
        return f"{letter}-{text}-{self._mac(self._keys[0], letter, text)}"

    def read(self, token: str) -> ReturnPathToken | None:
        """The verified meaning of a token, or None for anything forged, mangled or foreign."""
        match = _TOKEN_RE.match(token.strip().lower()) if isinstance(token, str) else None
        if match is None:
            return None
        letter, text, mac = match.groups()
        kind = RETURN_PATH_KINDS.get(letter)
        ident = _id_value(text)
        if kind is None or ident is None or len(mac) != RETURN_PATH_MAC_CHARS:
            return None
        if not any(hmac.compare_digest(self._mac(key, letter, text), mac) for key in self._keys):
            return None
        return ReturnPathToken(kind, ident)

    def address(self, base: str, kind: str, ident: int) -> str:
        """``bounces@d`` -> ``bounces+TOKEN@d``."""
        local, _, domain = base.rpartition("@")
        return f"{local}+{self.token(kind, ident)}@{domain}"

    def read_address(self, base: str, address: str) -> ReturnPathToken | None:
        """The token of ``address`` when it is ``base`` with a valid ``+TOKEN`` (any case)."""
        if not base or not isinstance(address, str):
            return None
        address = address.strip().strip("<>").strip()
        local, _, domain = address.rpartition("@")
        base_local, _, base_domain = base.rpartition("@")
        if domain.casefold() != base_domain.casefold():
            return None
        prefix, plus, token = local.partition("+")
        if not plus or prefix.casefold() != base_local.casefold():
            return None
        return self.read(token)

    def find(self, base: str, addresses: Iterable[str]) -> list[ReturnPathToken]:
        """Every valid token among ``addresses`` (envelope recipients, To, Delivered-To...)."""
        found: list[ReturnPathToken] = []
        for address in addresses:
            token = self.read_address(base, address)
            if token is not None and token not in found:
                found.append(token)
        return found
