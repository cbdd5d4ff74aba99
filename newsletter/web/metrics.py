"""``GET /metrics``: Prometheus text, for the allowed addresses or the bearer token only.

Anyone else gets a 404, as if the route did not exist: the queue and the send rate are not
for strangers. The client address is ``request.remote_addr``, which ProxyFix (configured with
``NEWSLETTER_TRUSTED_PROXIES``) has already set to the address the trusted proxies saw.
"""

from __future__ import annotations

import hmac
import ipaddress
from functools import lru_cache

from flask import Blueprint, Response, abort, current_app, request

from ..extensions import csrf, limiter
from ..observability.exposition import CONTENT_TYPE_LATEST, metrics_text

blueprint = Blueprint("metrics", __name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=32)
def allowed_networks(allowed: tuple[str, ...]) -> tuple[Network, ...]:
    """``NEWSLETTER_METRICS_ALLOWED`` parsed: addresses and networks (a bad entry is skipped)."""
    networks = []
    for item in allowed:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            continue  # `flask check` reports it; a typo must not open the endpoint
    return tuple(networks)


def address_allowed(address: str | None, allowed: tuple[str, ...]) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in allowed_networks(allowed))


def token_matches(header: str | None, token: str) -> bool:
    if not token or not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer ") :].strip().encode(), token.encode())


@blueprint.get("/metrics")
@limiter.exempt
@csrf.exempt
def metrics() -> Response:
    config = current_app.config
    if not (
        token_matches(request.headers.get("Authorization"), config.get("METRICS_TOKEN") or "")
        or address_allowed(request.remote_addr, tuple(config.get("METRICS_ALLOWED") or ()))
    ):
        abort(404)
    response = Response(
        metrics_text(current_app._get_current_object()), content_type=CONTENT_TYPE_LATEST
    )
    response.headers["Cache-Control"] = "no-store"
    return response
