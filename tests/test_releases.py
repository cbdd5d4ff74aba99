"""Releases: feed import (RSS and Atom, file or URL), idempotent, sanitised; the feed poll."""

from __future__ import annotations

import http.server
import threading
from datetime import datetime

import pytest
from sqlalchemy import func, select

from newsletter.domain.releases import InvalidInput, new_release_values, sanitise_body
from newsletter.extensions import db
from newsletter.models import Release

RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/">
<channel>
  <title>Communiqués</title>
  <link>https://example.org/</link>
  <language>fr-BE</language>
  <item>
    <guid>https://example.org/c/1</guid>
    <title>Lancement du portail vidéo</title>
    <link>https://example.org/c/1</link>
    <description>&lt;p&gt;Les journalistes &lt;b&gt;accèdent&lt;/b&gt; aux vidéos.&lt;/p&gt;
    </description>
    <pubDate>Mon, 03 Mar 2025 09:30:00 +0100</pubDate>
    <enclosure url="https://example.org/c/1.jpg" type="image/jpeg" length="1000"/>
    <media:content url="https://example.org/c/1.mp4" type="video/mp4"/>
  </item>
  <item>
    <guid>{second_guid}</guid>
    <title>{second_title}</title>
    <link>https://example.org/c/2</link>
    <description>Budget &lt;script&gt;alert(1)&lt;/script&gt;annuel</description>
    <pubDate>Tue, 04 Mar 2025 10:00:00 GMT</pubDate>
  </item>
  <item>
    <title></title>
    <description>An entry without id, link or title is skipped.</description>
  </item>
</channel>
</rss>
"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">
  <title>Press releases</title>
  <id>urn:uuid:feed</id>
  <updated>2025-03-05T08:00:00Z</updated>
  <entry>
    <id>urn:uuid:release-1</id>
    <title>Annual budget presented</title>
    <link href="https://example.org/en/1"/>
    <updated>2025-03-05T08:00:00Z</updated>
    <summary>The main lines of the budget.</summary>
    <content type="html">&lt;p onclick="x()"&gt;Full text&lt;iframe src="https://evil.example"&gt;&lt;/iframe&gt;&lt;/p&gt;</content>
  </entry>
</feed>
"""


def rss(second_title: str = "Conférence budgétaire", second_guid: str = "urn:c:2") -> str:
    return RSS.format(second_title=second_title, second_guid=second_guid)


def releases() -> list[Release]:
    db.session.expire_all()
    return list(db.session.scalars(select(Release).order_by(Release.published_at)))


def test_rss_import_creates_releases_and_a_second_run_changes_nothing(app, runner, tmp_path):
    feed = tmp_path / "feed.xml"
    feed.write_text(rss(), encoding="utf-8")
    result = runner.invoke(args=["releases", "import", str(feed)])
    assert result.exit_code == 0, result.output
    assert "2 created, 0 updated, 0 unchanged, 1 skipped" in result.output
    with app.app_context():
        first, second = releases()
        assert first.title == "Lancement du portail vidéo"
        assert first.language == "fr"  # from the channel's fr-BE
        assert first.published_at == datetime(2025, 3, 3, 8, 30)  # UTC
        assert first.summary == "Les journalistes accèdent aux vidéos."
        assert first.source_guid == "https://example.org/c/1"
        assert first.url == "https://example.org/c/1"
        assert first.image_url == "https://example.org/c/1.jpg"
        assert first.video_url == "https://example.org/c/1.mp4"
        assert "script" not in second.body_html and "alert" not in second.summary

    again = runner.invoke(args=["releases", "import", str(feed)])
    assert "0 created, 0 updated, 2 unchanged" in again.output
    with app.app_context():
        assert db.session.scalar(select(func.count(Release.id))) == 2


def test_an_edited_entry_updates_its_release(app, runner, tmp_path):
    feed = tmp_path / "feed.xml"
    feed.write_text(rss(), encoding="utf-8")
    runner.invoke(args=["releases", "import", str(feed)])
    feed.write_text(rss(second_title="Conférence budgétaire (corrigé)"), encoding="utf-8")
    result = runner.invoke(args=["releases", "import", str(feed)])
    assert "0 created, 1 updated, 1 unchanged" in result.output
    with app.app_context():
        assert [r.title for r in releases()][1] == "Conférence budgétaire (corrigé)"


def test_atom_import_sanitises_the_body_and_reads_the_language(app, runner, tmp_path):
    feed = tmp_path / "atom.xml"
    feed.write_text(ATOM, encoding="utf-8")
    result = runner.invoke(args=["releases", "import", str(feed), "--language", "fr"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        [release] = releases()
        assert release.language == "en"  # xml:lang wins over the default
        assert release.body_html == "<p>Full text</p>"
        assert release.source_guid == "urn:uuid:release-1"


def test_import_from_a_url(app, runner):
    body = rss().encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/feed.xml"
        result = runner.invoke(args=["releases", "import", url])
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 0, result.output
    assert "2 created" in result.output


@pytest.mark.parametrize(
    "content", ["", "not a feed at all", "<html><body>hello</body></html>", "\x00\x01\x02"]
)
def test_a_source_that_is_not_a_feed_fails_clearly(app, runner, tmp_path, content):
    feed = tmp_path / "bad.xml"
    feed.write_text(content, encoding="utf-8")
    result = runner.invoke(args=["releases", "import", str(feed)])
    assert result.exit_code != 0
    assert "Error" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count(Release.id))) == 0


def test_a_missing_source_fails_clearly(app, runner, tmp_path):
    result = runner.invoke(args=["releases", "import", str(tmp_path / "nope.xml")])
    assert result.exit_code != 0 and "cannot read" in result.output
    refused = runner.invoke(args=["releases", "import", "http://127.0.0.1:9/feed"])
    assert refused.exit_code != 0 and "cannot read" in refused.output


def test_the_same_guid_twice_in_one_feed_makes_one_release(app, runner, tmp_path):
    feed = tmp_path / "feed.xml"
    feed.write_text(rss(second_guid="https://example.org/c/1"), encoding="utf-8")
    runner.invoke(args=["releases", "import", str(feed)])
    with app.app_context():
        assert db.session.scalar(select(func.count(Release.id))) == 1


def test_feed_poll_job_imports_the_configured_feed(app, tmp_path):
    from newsletter.scheduling import jobs

    feed = tmp_path / "feed.xml"
    feed.write_text(rss(), encoding="utf-8")
    app.config["FEED_POLL_URL"] = str(feed)
    jobs.bind_app(app)
    assert jobs.poll_feed() == "2 created, 0 updated, 0 unchanged, 1 skipped"
    assert jobs.poll_feed().startswith("0 created")
    app.config["FEED_POLL_URL"] = str(tmp_path / "gone.xml")
    assert jobs.poll_feed() == "failed"


def test_the_leader_schedules_the_feed_poll_only_when_configured(app):
    from newsletter.scheduling.scheduler import FEED_POLL_JOB, DigestScheduler

    app.config["FEED_POLL_URL"] = "https://example.org/feed.xml"
    app.config["FEED_POLL_MINUTES"] = 15
    scheduler = DigestScheduler(app)
    scheduler.scheduler.start(paused=True)
    try:
        with app.app_context():
            scheduler.reconcile()
            job = scheduler.scheduler.get_job(FEED_POLL_JOB)
            assert job is not None and job.trigger.interval.total_seconds() == 900
            app.config["FEED_POLL_URL"] = ""
            scheduler.reconcile()
            assert scheduler.scheduler.get_job(FEED_POLL_JOB) is None
    finally:
        scheduler.shutdown()


def test_sanitiser_keeps_structure_and_drops_active_content():
    html = sanitise_body(
        '<h2>Titre</h2><p style="color:red">Un <a href="https://x.org" target="_blank">lien'
        '</a> <img src="https://x.org/a.png" onerror="x()" alt="a"></p><object data="x">'
        "</object><svg><script>alert(1)</script></svg>"
    )
    assert "<h2>Titre</h2>" in html
    assert 'href="https://x.org"' in html and 'src="https://x.org/a.png"' in html
    for forbidden in ("style=", "onerror", "object", "svg", "script", "alert", "target"):
        assert forbidden not in html


def test_release_validation_reports_each_field():
    with pytest.raises(InvalidInput) as caught:
        new_release_values({"title": "x" * 301, "language": "", "video_url": "//no-scheme"})
    assert set(caught.value.fields) == {"title", "language", "video_url"}
