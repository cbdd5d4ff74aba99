"""Response headers that make pages safer, and the cross-site check of the subscribe form."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, current_app, request


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def is_allowed_origin(origin: str | None) -> bool:
    """Same-site posts, posts without an Origin header, and the configured site origins."""
    if not origin:
        return True  # browsers send Origin on every cross-site POST; its absence is not one
    origin = origin.lower().rstrip("/")
    own = {origin_of(current_app.config["PUBLIC_URL"]), origin_of(request.host_url)}
    allowed = {item.lower().rstrip("/") for item in current_app.config["ALLOWED_ORIGINS"]}
    return origin in own or origin in allowed


def init_app(app: Flask) -> None:
    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        hsts = app.config.get("HSTS_HEADER_VALUE")
        if hsts and not app.config.get("DEVELOPMENT", True):
            response.headers.setdefault("Strict-Transport-Security", hsts)
        response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        frame_ancestors = "'none'"
        if request.endpoint == "public.subscribe_embed":
            frame_ancestors = " ".join(["'self'", *app.config["ALLOWED_ORIGINS"]])
        else:
            response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            f"frame-ancestors {frame_ancestors}; form-action 'self'",
        )
        return response
