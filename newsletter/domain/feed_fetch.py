"""Fetch a feed URL typed by staff without letting it reach inside the network (SSRF).

The host is resolved first and every address it resolves to must be public: loopback,
private, link-local (cloud metadata), multicast, reserved and unspecified addresses are
refused, however the address is written (``0x7f000001``, ``2130706433``, ``::ffff:127.0.0.1``).
The connection goes to the address that was checked (no second DNS answer), redirects are
followed by hand and checked the same way, and size and total time are capped. Hosts on the
allow-list (the newsroom's own feed server, say) skip the address check. Every failure is one
``FeedFetchError`` with no detail, so the error cannot be used as a port scanner.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Iterable
from urllib.parse import urljoin, urlsplit

from ..config import FEED_FETCH_TIMEOUT_SECONDS, FEED_MAX_BYTES, FEED_MAX_REDIRECTS


class FeedFetchError(ValueError):
    """The address could not be fetched as a feed (refused, unreachable, too big or slow)."""

    def __init__(self) -> None:
        super().__init__("the feed address could not be fetched")


_REDIRECTS = {301, 302, 303, 307, 308}


def is_public_address(address: str) -> bool:
    """True for an address on the public Internet only."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def _resolve(host: str, port: int, allowed: bool) -> str:
    """One address of ``host`` to connect to; every address it has must be public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise FeedFetchError() from None
    addresses = [info[4][0] for info in infos]
    if not addresses or (not allowed and not all(is_public_address(a) for a in addresses)):
        raise FeedFetchError()
    return addresses[0]


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def fetch_feed_url(url: str, *, allowed_hosts: Iterable[str] = ()) -> bytes:
    """The body of ``url`` (http or https), following checked redirects; ``FeedFetchError``
    for anything refused or failed."""
    allowed = {host.strip().lower().strip("[]") for host in allowed_hosts if host.strip()}
    deadline = time.monotonic() + FEED_FETCH_TIMEOUT_SECONDS
    for _hop in range(FEED_MAX_REDIRECTS + 1):
        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port
        except ValueError:
            raise FeedFetchError() from None
        if parts.scheme not in ("http", "https") or not host or parts.username:
            raise FeedFetchError()
        port = port or (443 if parts.scheme == "https" else 80)
        address = _resolve(host, port, host.lower() in allowed)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FeedFetchError()
        kind = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
        connection = kind(host, port, address, timeout=remaining)
        try:
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection.request("GET", path, headers={"User-Agent": "newsletter-feed-import/1.0"})
            response = connection.getresponse()
            if response.status in _REDIRECTS and response.getheader("Location"):
                url = urljoin(url, response.getheader("Location"))
                continue
            if response.status != 200:
                raise FeedFetchError()
            chunks, size = [], 0
            while chunk := response.read(64 * 1024):
                size += len(chunk)
                if size > FEED_MAX_BYTES or time.monotonic() > deadline:
                    raise FeedFetchError()
                chunks.append(chunk)
            return b"".join(chunks)
        except (OSError, http.client.HTTPException, ValueError):
            raise FeedFetchError() from None
        finally:
            connection.close()
    raise FeedFetchError()
