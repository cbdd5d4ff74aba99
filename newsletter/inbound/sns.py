"""Amazon SNS message signatures (SignatureVersion 1: SHA1withRSA, 2: SHA256withRSA), verified
with ``cryptography`` against the certificate named by ``SigningCertURL``.

The certificate (and a ``SubscribeURL``) is only ever fetched from a URL matching the allowed
pattern, by default HTTPS on ``sns.<region>.amazonaws.com``: a message cannot bring a
certificate of its own making. Fetching is pluggable (``fetch``) so tests serve their own.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..config import WEBHOOK_FETCH_TIMEOUT_SECONDS, WEBHOOK_MAX_CERT_BYTES

# Fields signed, in this order, per message type (AWS SNS developer guide).
_SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
}
_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}  # noqa: S303 - SNS's own version 1 is SHA1

Fetch = Callable[[str], bytes]


class SnsError(ValueError):
    """The message is not a genuine SNS message (or cannot be checked)."""


def fetch_url(url: str) -> bytes:
    """GET ``url`` (already checked against the allow-list), bounded in time and size."""
    with urllib.request.urlopen(url, timeout=WEBHOOK_FETCH_TIMEOUT_SECONDS) as response:  # noqa: S310
        return response.read(WEBHOOK_MAX_CERT_BYTES + 1)[: WEBHOOK_MAX_CERT_BYTES + 1]


def string_to_sign(message: Mapping[str, Any]) -> bytes:
    fields = _SIGNED_FIELDS.get(str(message.get("Type")))
    if fields is None:
        raise SnsError("unknown message type")
    lines: list[str] = []
    for name in fields:
        value = message.get(name)
        if value is None:
            if name == "Subject":
                continue  # optional, and then not signed
            raise SnsError(f"missing {name}")
        if not isinstance(value, str):
            raise SnsError(f"{name} is not text")
        lines += [name, value]
    return ("\n".join(lines) + "\n").encode("utf-8")


class SnsVerifier:
    """Verifies SNS messages; certificates are cached per URL for the process's life."""

    def __init__(self, allowed_url: str, fetch: Fetch = fetch_url) -> None:
        self.allowed = re.compile(allowed_url)
        self.fetch = fetch
        self._certs: dict[str, rsa.RSAPublicKey] = {}
        self._lock = threading.Lock()

    def allowed_url(self, url: object) -> bool:
        return isinstance(url, str) and len(url) < 2000 and bool(self.allowed.match(url))

    def _public_key(self, url: str) -> rsa.RSAPublicKey:
        with self._lock:
            key = self._certs.get(url)
        if key is not None:
            return key
        try:
            pem = self.fetch(url)
        except OSError as exc:
            raise SnsError(f"certificate not fetched: {exc}") from None
        if len(pem) > WEBHOOK_MAX_CERT_BYTES:
            raise SnsError("certificate too large")
        try:
            key = x509.load_pem_x509_certificate(pem).public_key()
        except ValueError:
            raise SnsError("not a PEM certificate") from None
        if not isinstance(key, rsa.RSAPublicKey):
            raise SnsError("not an RSA certificate")
        with self._lock:
            self._certs[url] = key
        return key

    def verify(self, message: Mapping[str, Any]) -> None:
        """Raise ``SnsError`` unless ``message`` carries a valid SNS signature."""
        version = str(message.get("SignatureVersion", ""))
        algorithm = _HASHES.get(version)
        if algorithm is None:
            raise SnsError("unsupported SignatureVersion")
        cert_url = message.get("SigningCertURL") or message.get("SigningCertUrl")
        if not self.allowed_url(cert_url) or not str(cert_url).endswith(".pem"):
            raise SnsError("certificate URL not allowed")
        try:
            signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        except (binascii.Error, ValueError):
            raise SnsError("signature is not base64") from None
        data = string_to_sign(message)
        key = self._public_key(str(cert_url))
        try:
            key.verify(signature, data, padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            raise SnsError("bad signature") from None
