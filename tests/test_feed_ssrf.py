"""Issue 11, finding 5: the console's feed import fetches only public addresses.

Resolved first; loopback, private, link-local, multicast and reserved addresses refused (the
newsroom's own feed host can be allow-listed), re-checked on every redirect, one generic error
whatever went wrong (the old error text worked as a port scanner). A real HTTP server on
loopback serves the feed and issues the redirects.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from newsletter.extensions import db
from newsletter.models import Release
from tests.conftest import free_port
from tests.test_admin import FEED, log_in, make_user, post_feed

REQUESTS: list[str] = []


class FeedHandler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        REQUESTS.append(self.path)
        parts = urlsplit(self.path)
        if parts.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", parse_qs(parts.query)["to"][0])
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.end_headers()
        self.wfile.write(FEED)

    def log_message(self, *args):
        pass


@pytest.fixture
def console(app):
    """A staff member's test client, logged in."""
    client = app.test_client()
    log_in(app, client, make_user(app, "editor@example.org", staff=True))
    return client


@pytest.fixture
def feed_server():
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), FeedHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    REQUESTS.clear()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def release_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(Release.id)))


def error_of(response) -> str:
    import re

    match = re.search(r'role="alert"[^>]*>(.*?)<', response.get_data(as_text=True), re.S)
    return match.group(1).strip() if match else response.get_data(as_text=True)


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/feed",
        "http://0x7f000001:{port}/feed",
        "http://2130706433:{port}/feed",
        "http://127.1:{port}/feed",
        "http://localhost:{port}/feed",
        "http://[::ffff:127.0.0.1]:{port}/feed",
        "http://10.0.0.1/feed",
        "http://169.254.169.254/latest/meta-data/",
        "http://224.0.0.1/feed",
        "http://0.0.0.0:{port}/feed",
    ],
)
def test_feed_import_refuses_internal_addresses(app, console, feed_server, target):
    url = target.format(port=feed_server)
    response = post_feed(console, url=url)
    assert response.status_code == 422, response.status_code
    assert REQUESTS == []  # never even connected
    assert release_count(app) == 0
    # One generic error, the same as for a port with nothing behind it.
    closed = post_feed(console, url=f"http://127.0.0.1:{free_port()}/")
    assert error_of(response) == error_of(closed)
    assert str(feed_server) not in error_of(response)


@pytest.mark.parametrize(
    "target",
    [
        "http://localhost:{port}/feed",
        "http://0x7f000001:{port}/feed",
        "http://10.0.0.1/feed",
        "http://169.254.169.254/latest/meta-data/",
    ],
)
def test_a_redirect_to_an_internal_address_is_refused(app, console, feed_server, target):
    # The redirecting server itself is the allow-listed feed host.
    app.config["FEED_ALLOWED_HOSTS"] = ["127.0.0.1"]
    to = target.format(port=feed_server)
    response = post_feed(console, url=f"http://127.0.0.1:{feed_server}/redirect?to={to}")
    assert response.status_code == 422
    assert [path.split("?")[0] for path in REQUESTS] == ["/redirect"]
    assert release_count(app) == 0


def test_the_allow_listed_feed_host_is_imported(app, console, feed_server):
    app.config["FEED_ALLOWED_HOSTS"] = ["127.0.0.1"]
    to = f"http://127.0.0.1:{feed_server}/feed"
    response = post_feed(console, url=f"http://127.0.0.1:{feed_server}/redirect?to={to}")
    assert response.status_code == 200, error_of(response)
    assert release_count(app) == 2
