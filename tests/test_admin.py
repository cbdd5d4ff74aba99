"""The staff console: who may enter, CSRF on every form, escaping, CSV import and export."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from flask_login.utils import _create_identifier
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from newsletter.extensions import db
from newsletter.models import (
    Digest,
    DigestSchedule,
    DigestStatus,
    InboundMessage,
    OutboxMessage,
    Release,
    ScheduleStatus,
    Subscriber,
    SubscriberStatus,
    User,
    utcnow,
)

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_user(app, email: str, *, staff: bool) -> User:
    """A user written straight to the table: the accounts pages are not what is tested here."""
    with app.app_context():
        user = User(
            email=email,
            email_key=email.casefold(),
            password_hash="not-a-real-hash",
            is_staff=staff,
            staff_role="owner" if staff else None,
            language="en",
            session_version=1,
        )
        db.session.add(user)
        db.session.commit()
        db.session.refresh(user)
        db.session.expunge(user)
        return user


def log_in(app, client, user: User) -> None:
    """Put the user in the test client's session, the way Flask-Login's ``login_user`` does."""
    # Flask-Login's "strong" protection ties the session to the client's address and agent.
    with app.test_request_context(environ_base=client.environ_base):
        identifier = _create_identifier()
    with client.session_transaction() as session:
        session["_user_id"] = f"{user.id}:{user.session_version}"
        session["_fresh"] = True
        session["_id"] = identifier
        session["lang"] = "en"


@pytest.fixture
def staff(app):
    return make_user(app, "editor@example.org", staff=True)


@pytest.fixture
def staff_client(app, staff):
    client = app.test_client()
    log_in(app, client, staff)
    return client


def csrf_token(client, path: str = "/admin/subscribers/import") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.status_code
    match = CSRF_RE.search(page.get_data(as_text=True))
    assert match, "no CSRF token on the page"
    return match.group(1)


def add_subscriber(email: str, **fields) -> Subscriber:
    subscriber = Subscriber(
        email=email,
        email_key=email.casefold(),
        language=fields.pop("language", "fr"),
        status=fields.pop("status", SubscriberStatus.CONFIRMED),
        hard_bounces=0,
        **fields,
    )
    db.session.add(subscriber)
    return subscriber


def sample_any(rule: str) -> str:
    """A rule with the first choice of each ``any`` converter filled in."""
    return re.sub(r"<any\(\s*(\w+)[^>]*>", r"\1", rule)


def sample_path(rule: str) -> str:
    """A rule with sample values: 1 for ids, the first choice of an ``any`` converter."""
    return re.sub(r"<[^>]+>", "1", sample_any(rule))


def admin_endpoints(app, method: str) -> list[str]:
    """Every route of the console answering ``method``, with sample values filled in."""
    return [
        sample_path(rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("admin.") and method in rule.methods
    ]


def admin_get_endpoints(app) -> list[str]:
    return admin_endpoints(app, "GET")


def admin_post_endpoints(app) -> list[str]:
    return admin_endpoints(app, "POST")


# --- Who may enter ------------------------------------------------------------------------


def test_console_sends_anonymous_browsers_to_login_and_scripts_get_401(app, client):
    paths = admin_get_endpoints(app)
    assert "/admin/" in paths and "/admin/subscribers" in paths
    for path in paths:
        page = client.get(path)
        assert page.status_code in (302, 401), (path, page.status_code)
        if page.status_code == 302:
            assert "/login" in page.headers["Location"] or "login" in page.headers["Location"]
        api = client.get(path, headers={"Accept": "application/json"})
        assert api.status_code == 401, path
        assert api.get_json()["error"]["code"] == "unauthorized"
    for path in admin_post_endpoints(app):
        assert client.post(path, data={}).status_code in (302, 400, 401), path


def test_console_refuses_accounts_that_are_not_staff(app):
    member = make_user(app, "journalist@example.org", staff=False)
    client = app.test_client()
    log_in(app, client, member)
    for path in admin_get_endpoints(app):
        assert client.get(path).status_code == 403, path
    for path in admin_post_endpoints(app):
        # With or without a token, a member is refused; nothing is written.
        assert client.post(path, data={"csrf_token": "x"}).status_code in (400, 403), path
    page = client.get("/admin/")
    assert "This area is for staff only." in page.get_data(as_text=True)


def test_ended_session_is_refused(app, staff):
    client = app.test_client()
    log_in(app, client, staff)
    with app.app_context():
        user = db.session.get(User, staff.id)
        user.session_version += 1  # a password change ends other sessions
        db.session.commit()
    assert client.get("/admin/", headers={"Accept": "application/json"}).status_code == 401


def console_page_ids() -> dict[str, int]:
    """One row of each kind a console page shows, by the name of its id in the routes."""
    subscriber = add_subscriber("someone@example.org")
    release = add_release()
    digest = Digest(language="en", status=DigestStatus.SCHEDULED, send_at=utcnow())
    db.session.add(digest)
    db.session.flush()
    inbound = InboundMessage(
        source="smtp", size=11, raw=b"Subject: x\r\n\r\nbody", subscriber_id=subscriber.id
    )
    db.session.add(inbound)
    db.session.commit()
    return {
        "subscriber_id": subscriber.id,
        "release_id": release.id,
        "digest_id": digest.id,
        "message_id": inbound.id,
    }


def test_staff_sees_every_console_page(app, staff_client):
    with app.app_context():
        ids = console_page_ids()
    paths = [
        # A page of a route with an id this test does not make fails here (KeyError).
        re.sub(r"<[^>]*:(\w+)>", lambda match: str(ids[match.group(1)]), sample_any(rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.endpoint.split(".")[0] in ("admin", "staff_admin")
        and "GET" in rule.methods
        # The invitation is the invited person's page, not staff's (tests/test_staff_*.py).
        and rule.endpoint != "staff_admin.accept_invitation_page"
    ]
    assert "/admin/digests/{digest_id}".format(**ids) in paths
    for path in paths:
        page = staff_client.get(path)
        assert page.status_code == 200, (path, page.status_code)


# --- CSRF ---------------------------------------------------------------------------------


def test_every_console_form_rejects_a_missing_csrf_token(app, staff_client):
    assert app.config.get("WTF_CSRF_ENABLED", True)
    paths = admin_post_endpoints(app)
    assert "/admin/subscribers/import" in paths
    for path in paths:
        response = staff_client.post(path, data={"title": "x", "email": "a@example.org"})
        assert response.status_code == 400, (path, response.status_code)
        assert "The form has expired" in response.get_data(as_text=True), path
        wrong = staff_client.post(path, data={"csrf_token": "forged"})
        assert wrong.status_code == 400, path
    with app.app_context():
        assert db.session.scalar(select(func.count(Subscriber.id))) == 0


def test_every_console_form_carries_a_csrf_token(app, staff_client):
    for path in admin_get_endpoints(app):
        page = staff_client.get(path)
        if page.status_code != 200 or page.mimetype != "text/html":
            continue
        html = page.get_data(as_text=True)
        for form in re.findall(r"<form[^>]*>.*?</form>", html, flags=re.S):
            if 'method="get"' in form:
                continue
            assert 'name="csrf_token"' in form, (path, form[:200])


# --- Escaping -----------------------------------------------------------------------------


def test_html_in_a_subscriber_name_is_shown_escaped(app, staff_client):
    with app.app_context():
        subscriber = add_subscriber(
            "xss@example.org", name='<script>alert("x")</script><img src=x onerror=alert(1)>'
        )
        db.session.commit()
        subscriber_id = subscriber.id
    for path in ("/admin/subscribers", f"/admin/subscribers/{subscriber_id}"):
        html = staff_client.get(path).get_data(as_text=True)
        assert "<script>alert" not in html
        assert "<img src=x" not in html
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html


# --- Subscribers list ---------------------------------------------------------------------


def test_search_filters_and_pages_subscribers(app, staff_client):
    with app.app_context():
        for index in range(60):
            add_subscriber(f"reader{index:02d}@example.org", language="fr" if index % 2 else "en")
        add_subscriber("Left.Person@Example.org", status=SubscriberStatus.UNSUBSCRIBED)
        add_subscriber("100%_sure@example.org")
        db.session.commit()

    first = staff_client.get("/admin/subscribers").get_data(as_text=True)
    assert "62 subscribers" in first
    assert "Page 1 of 2" in first
    second = staff_client.get("/admin/subscribers?page=2").get_data(as_text=True)
    assert "Page 2 of 2" in second and "reader00@example.org" in second

    found = staff_client.get("/admin/subscribers?q=LEFT.person").get_data(as_text=True)
    assert "1 subscriber" in found and "Left.Person@Example.org" in found

    # LIKE wildcards typed by staff match literally.
    literal = staff_client.get("/admin/subscribers?q=0%25_").get_data(as_text=True)
    assert "1 subscriber" in literal and "100%_sure@example.org" in literal

    english = staff_client.get("/admin/subscribers?language=en&status=confirmed")
    assert "30 subscribers" in english.get_data(as_text=True)
    left = staff_client.get("/admin/subscribers?status=unsubscribed").get_data(as_text=True)
    assert "1 subscriber" in left

    assert staff_client.get("/admin/subscribers?status=deleted").status_code == 400
    assert staff_client.get("/admin/subscribers?language=de").status_code == 400
    assert staff_client.get("/admin/subscribers?page=abc").status_code == 200
    assert staff_client.get("/admin/subscribers?page=99999999999999").status_code == 200
    assert staff_client.get("/admin/subscribers/999999").status_code == 404


def test_subscriber_detail_shows_the_consent_record(app, staff_client):
    with app.app_context():
        subscriber = add_subscriber(
            "consent@example.org",
            consent_at=utcnow() - timedelta(days=3),
            consent_ip="203.0.113.9",
            consent_page="https://example.org/press",
            consent_user_agent="Mozilla/5.0 Test",
            consent_source="form",
            confirmed_at=utcnow() - timedelta(days=2),
            confirmed_ip="203.0.113.10",
        )
        db.session.commit()
        subscriber_id = subscriber.id
    html = staff_client.get(f"/admin/subscribers/{subscriber_id}").get_data(as_text=True)
    for fact in (
        "Consent record",
        "203.0.113.9",
        "https://example.org/press",
        "Mozilla/5.0 Test",
        "subscribe form",
        "203.0.113.10",
    ):
        assert fact in html, fact


def test_dashboard_counts_statuses_and_charts_ninety_days(app, staff_client):
    now = utcnow()
    with app.app_context():
        add_subscriber("a@example.org", confirmed_at=now - timedelta(days=1))
        add_subscriber("b@example.org", confirmed_at=now - timedelta(days=1))
        add_subscriber("old@example.org", confirmed_at=now - timedelta(days=200))
        add_subscriber(
            "c@example.org",
            status=SubscriberStatus.UNSUBSCRIBED,
            confirmed_at=now - timedelta(days=10),
            unsubscribed_at=now - timedelta(days=2),
        )
        add_subscriber("d@example.org", status=SubscriberStatus.PENDING)
        add_subscriber(
            "e@example.org", status=SubscriberStatus.BOUNCED, bounced_at=now - timedelta(days=5)
        )
        db.session.commit()
    page = staff_client.get("/admin/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    # 3 confirmations in the window (a, b, c); 2 departures (c left, e bounced).
    assert "confirmations 3, departures (unsubscribed or bounced) 2" in html
    assert "<svg" in html and "<polyline" in html
    assert re.search(r'stat-confirmed">\s*<a[^>]*>\s*<span class="stat-number">3<', html)
    # Nothing is fetched from another host.
    assert not re.search(r'(src|href)="(https?:)?//', html)


# --- CSV export ---------------------------------------------------------------------------


def read_export(response) -> list[dict[str, str]]:
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))


def test_export_streams_the_filtered_subscribers_as_csv(app, staff_client):
    with app.app_context():
        add_subscriber("one@example.org", name="Zoë, “quoted”", language="fr")
        add_subscriber("two@example.org", language="en")
        add_subscriber("gone@example.org", status=SubscriberStatus.UNSUBSCRIBED)
        db.session.commit()
    response = staff_client.get("/admin/subscribers/export.csv?status=confirmed")
    assert response.status_code == 200
    assert response.is_streamed
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = read_export(response)
    assert sorted(row["email"] for row in rows) == ["one@example.org", "two@example.org"]
    assert {row["name"] for row in rows} == {"Zoë, “quoted”", ""}
    assert "consent_at" in rows[0]


def test_export_defuses_spreadsheet_formulas(app, staff_client):
    with app.app_context():
        add_subscriber("formula@example.org", name='=HYPERLINK("http://evil.example","x")')
        db.session.commit()
    [row] = read_export(staff_client.get("/admin/subscribers/export.csv"))
    assert row["name"] == '\'=HYPERLINK("http://evil.example","x")'


def test_export_of_many_subscribers_reads_in_batches(app, staff_client):
    with app.app_context():
        db.session.execute(
            Subscriber.__table__.insert(),
            [
                {
                    "email": f"bulk{index}@example.org",
                    "email_key": f"bulk{index}@example.org",
                    "language": "fr",
                    "status": "confirmed",
                    "created_at": utcnow(),
                    "hard_bounces": 0,
                }
                for index in range(2500)
            ],
        )
        db.session.commit()
    response = staff_client.get("/admin/subscribers/export.csv")
    rows = read_export(response)
    assert len(rows) == 2500
    assert len({row["email"] for row in rows}) == 2500


# --- CSV import ---------------------------------------------------------------------------


def post_import(client, content: bytes | str, *, step: str = "preview", language: str = "fr"):
    token = csrf_token(client)
    data = {"csrf_token": token, "step": step, "default_language": language}
    if step == "preview":
        raw = content.encode("utf-8") if isinstance(content, str) else content
        data["file"] = FileStorage(io.BytesIO(raw), "subscribers.csv", content_type="text/csv")
    else:
        data["csv_text"] = content
    # Encoded in memory: the test client spills big bodies to a temporary file it never closes.
    boundary, body = encode_multipart(data)
    return client.post(
        "/admin/subscribers/import",
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )


IMPORT_CSV = (
    "email,name,language,consent_at,consent_ip,consent_page,notes\r\n"
    "new.pending@example.org,New Pending,en,,,,vip\r\n"
    "new.confirmed@example.org,New Confirmed,fr,2024-05-31T14:00:00Z,192.0.2.1,https://x.example/,\r\n"
    "not-an-address,Broken,fr,,,,\r\n"
    "bad.date@example.org,Bad Date,fr,yesterday,,,\r\n"
    "bad.language@example.org,,de,,,,\r\n"
    "NEW.PENDING@example.org,Twice,en,,,,\r\n"
    "already@example.org,,fr,,,,\r\n"
    "left@example.org,,fr,2024-01-01,,,\r\n"
    "too,many,fields,here,,,,,,\r\n"
    "\r\n"
    "plain@example.org,,,,,,\r\n"
)


def seed_existing(app) -> None:
    with app.app_context():
        add_subscriber("already@example.org", status=SubscriberStatus.CONFIRMED)
        add_subscriber("left@example.org", status=SubscriberStatus.UNSUBSCRIBED)
        db.session.commit()


def test_import_preview_reports_every_row_and_writes_nothing(app, staff_client):
    seed_existing(app)
    response = post_import(staff_client, IMPORT_CSV)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Preview: nothing is imported yet" in html
    for expected in (
        "No recorded consent: imported as pending",
        "Consent recorded: imported as confirmed.",
        "Not a valid email address",
        "The column consent_at is not valid",
        "The column language is not valid",
        "Same address as line 2: skipped.",
        "Already in the list (confirmed): left as it is.",
        "Left the newsletter: an import never subscribes them again.",
        "10 fields where the first line names 7.",
        "Ignored columns: notes",
        "Import 3 addresses",
    ):
        assert expected in html, expected
    with app.app_context():
        assert db.session.scalar(select(func.count(Subscriber.id))) == 2
        assert db.session.scalar(select(func.count(OutboxMessage.id))) == 0


def test_import_writes_valid_rows_and_sends_the_double_opt_in(
    app, staff_client, mailbox, run_worker
):
    seed_existing(app)
    response = post_import(staff_client, IMPORT_CSV, step="import")
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html
    assert "1 imported as confirmed, 2 imported as pending" in html
    with app.app_context():
        rows = {s.email_key: s for s in db.session.scalars(select(Subscriber))}
        assert set(rows) == {
            "already@example.org",
            "left@example.org",
            "new.pending@example.org",
            "new.confirmed@example.org",
            "plain@example.org",
        }
        pending = rows["new.pending@example.org"]
        assert pending.status == SubscriberStatus.PENDING
        assert pending.consent_source == "import" and pending.confirmed_at is None
        assert pending.name == "New Pending" and pending.language == "en"
        confirmed = rows["new.confirmed@example.org"]
        assert confirmed.status == SubscriberStatus.CONFIRMED
        assert confirmed.consent_at.isoformat() == "2024-05-31T14:00:00"
        assert confirmed.consent_ip == "192.0.2.1"
        assert rows["plain@example.org"].language == "fr"  # the default language
        # Withdrawn consent stands.
        assert rows["left@example.org"].status == SubscriberStatus.UNSUBSCRIBED

    run_worker()
    messages = mailbox.wait_for(2)
    assert sorted(m.to for m in messages) == ["new.pending@example.org", "plain@example.org"]
    english = mailbox.to("new.pending@example.org")[0]
    assert english.header("Content-Language") == "en"
    [link] = english.links()
    assert "/subscribe/confirm/" in link


def test_reimporting_the_same_file_changes_nothing(app, staff_client, mailbox, run_worker):
    post_import(staff_client, "email\r\nonce@example.org\r\n", step="import")
    again = post_import(staff_client, "email\r\nonce@example.org\r\n", step="import")
    assert "Already in the list (pending): left as it is." in again.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count(OutboxMessage.id))) == 1


def test_import_reads_semicolons_and_the_spreadsheet_bom(app, staff_client):
    content = "\ufeffEmail;Name;Language\r\nzoe@example.org;Zoë Ünïcode;EN\r\n".encode()
    response = post_import(staff_client, content)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "zoe@example.org" in html and "Import 1 address" in html


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "The file is empty."),
        (b"\r\n\r\n", "The file is empty."),
        (b"\xff\xfeb\x00a\x00d\x00", "not UTF-8"),
        ("email\r\nlatin@example.org,Andr\xe9\r\n".encode("latin-1"), "not UTF-8"),
        (b"name,language\r\nx,fr\r\n", "one of them “email”"),
        (b"email\r\n", "has no rows"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "binary data"),
        (b'email\r\n"unterminated@example.org\r\n', ""),
    ],
)
def test_unreadable_files_are_refused_clearly(app, staff_client, content, message):
    response = post_import(staff_client, content)
    assert response.status_code in (200, 422), response.status_code
    html = response.get_data(as_text=True)
    assert message in html
    with app.app_context():
        assert db.session.scalar(select(func.count(Subscriber.id))) == 0


def test_import_refuses_too_many_rows(app, staff_client):
    from newsletter.config import CSV_IMPORT_MAX_ROWS

    lines = "".join(f"r{index}@example.org\r\n" for index in range(CSV_IMPORT_MAX_ROWS + 1))
    response = post_import(staff_client, "email\r\n" + lines)
    assert response.status_code == 422
    assert f"more than {CSV_IMPORT_MAX_ROWS} rows" in response.get_data(as_text=True)


def test_import_upload_size_is_bounded(app, staff_client):
    from newsletter.config import CSV_IMPORT_MAX_BYTES

    big = b"email\r\n" + b"x" * (CSV_IMPORT_MAX_BYTES + 10)
    response = post_import(staff_client, big)
    assert response.status_code == 413
    assert "larger than 1024 kB" in response.get_data(as_text=True)
    huge = b"email\r\n" + b"x" * (3 * CSV_IMPORT_MAX_BYTES)
    assert post_import(staff_client, huge).status_code == 413
    with app.app_context():
        assert db.session.scalar(select(func.count(Subscriber.id))) == 0


def test_import_with_a_bad_default_language_is_refused(app, staff_client):
    response = post_import(staff_client, "email\r\na@example.org\r\n", language="xx")
    assert response.status_code == 422


# --- Releases -----------------------------------------------------------------------------


def release_form(client, path: str, **fields) -> dict:
    data = {
        "csrf_token": csrf_token(client, path),
        "title": "Budget 2025",
        "dateline": "Brussels",
        "summary": "The budget.",
        "body": "<p>Hello</p>",
        "url": "",
        "image_url": "",
        "video_url": "",
        "language": "en",
        "published_at": "",
        "timezone": "Europe/Brussels",
        "action": "save",
    }
    data.update(fields)
    return data


HOSTILE_BODY = (
    '<p onclick="steal()">Text <strong>kept</strong></p><script>alert(1)</script>'
    '<img src="https://evil.example/x.png" onerror="alert(2)"><a href="javascript:alert(3)">x</a>'
    "<style>body{display:none}</style>"
)


def test_release_preview_shows_the_sanitised_body_and_saves_nothing(app, staff_client):
    data = release_form(staff_client, "/admin/releases/new", body=HOSTILE_BODY, action="preview")
    page = staff_client.post("/admin/releases/new", data=data)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Preview (not saved yet)" in html
    preview = html[html.index('class="release-body"') : html.index("</article>")]
    assert "<strong>kept</strong>" in preview
    for hostile in ("<script", "onclick", "onerror", "javascript:", "<style"):
        assert hostile not in preview, hostile
    # What was typed stays in the form, escaped.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    with app.app_context():
        assert db.session.scalar(select(func.count(Release.id))) == 0


def test_release_is_created_sanitised_and_listed_escaped(app, staff_client):
    data = release_form(
        staff_client,
        "/admin/releases/new",
        title="<b>Bold</b> & <script>x()</script>",
        body=HOSTILE_BODY,
        published_at="2025-03-01T10:00",
        timezone="Europe/Brussels",
    )
    response = staff_client.post("/admin/releases/new", data=data)
    assert response.status_code == 303
    with app.app_context():
        release = db.session.scalar(select(Release))
        assert "<script" not in release.body_html and "onclick" not in release.body_html
        assert "<strong>kept</strong>" in release.body_html
        assert release.published_at.isoformat() == "2025-03-01T09:00:00"  # Brussels is UTC+1
        release_id = release.id
    edit = staff_client.get(f"/admin/releases/{release_id}").get_data(as_text=True)
    assert "The release is saved." in edit
    assert 'value="2025-03-01T10:00"' in edit  # shown back in the zone it was typed in
    listing = staff_client.get("/admin/releases").get_data(as_text=True)
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; &lt;script&gt;x()&lt;/script&gt;" in listing
    assert "<script>x()" not in listing


def test_release_edit_and_its_errors(app, staff_client):
    staff_client.post("/admin/releases/new", data=release_form(staff_client, "/admin/releases/new"))
    with app.app_context():
        release_id = db.session.scalar(select(Release.id))
    path = f"/admin/releases/{release_id}"
    bad = staff_client.post(
        path,
        data=release_form(
            staff_client, path, title="", url="javascript:alert(1)", published_at="soon"
        ),
    )
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422
    assert 'id="title-error"' in html and 'id="url-error"' in html
    assert 'id="published_at-error"' in html
    good = staff_client.post(
        path,
        data=release_form(staff_client, path, title="Budget 2026", published_at="2025-01-01T00:00"),
    )
    assert good.status_code == 303
    with app.app_context():
        assert db.session.get(Release, release_id).title == "Budget 2026"
    assert staff_client.get("/admin/releases/999999").status_code == 404


FEED = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>News</title><language>fr</language>
<item><guid>urn:news:1</guid><title>Premier communiqu\xc3\xa9</title><link>https://example.org/1</link>
<description>&lt;p&gt;Texte&lt;/p&gt;&lt;script&gt;bad()&lt;/script&gt;</description>
<pubDate>Mon, 03 Mar 2025 09:00:00 +0000</pubDate></item>
<item><guid>urn:news:2</guid><title>Second</title><link>https://example.org/2</link>
<pubDate>Tue, 04 Mar 2025 09:00:00 +0000</pubDate></item>
</channel></rss>"""


def post_feed(client, *, file: bytes | None = None, url: str = ""):
    data = {"csrf_token": csrf_token(client, "/admin/releases"), "url": url}
    if file is not None:
        data["file"] = FileStorage(io.BytesIO(file), "feed.xml", content_type="text/xml")
    boundary, body = encode_multipart(data)
    return client.post(
        "/admin/releases/import",
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )


def test_feed_import_from_a_file_is_idempotent(app, staff_client):
    first = post_feed(staff_client, file=FEED)
    assert first.status_code == 200
    assert "2 created, 0 updated, 0 unchanged, 0 skipped" in first.get_data(as_text=True)
    again = post_feed(staff_client, file=FEED)
    assert "0 created, 0 updated, 2 unchanged" in again.get_data(as_text=True)
    with app.app_context():
        releases = db.session.scalars(select(Release).order_by(Release.id)).all()
        assert [r.title for r in releases] == ["Premier communiqué", "Second"]
        assert all(r.language == "fr" for r in releases)
        assert "<script" not in releases[0].body_html


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "/etc/passwd", "ftp://example.org/feed.xml", ""]
)
def test_feed_import_never_reads_server_files(app, staff_client, url):
    response = post_feed(staff_client, url=url)
    assert response.status_code == 422
    assert "root:" not in response.get_data(as_text=True)


def test_feed_import_refuses_what_is_not_a_feed(app, staff_client):
    response = post_feed(staff_client, file=b"\x00\x01 not xml at all <<<")
    assert response.status_code == 422
    assert "could not be imported" in response.get_data(as_text=True)


# --- Digests ------------------------------------------------------------------------------


def digest_form(client, **fields) -> dict:
    data = {
        "csrf_token": csrf_token(client, "/admin/digests"),
        "language": "en",
        "subject": "",
        "when": "now",
        "send_at": "",
        "timezone": "Europe/Brussels",
    }
    data.update(fields)
    return data


def add_release(language: str = "en", title: str = "Budget", **fields) -> Release:
    release = Release(
        title=title,
        summary=fields.pop("summary", "Summary."),
        body_html="<p>Body</p>",
        language=language,
        published_at=fields.pop("published_at", utcnow() - timedelta(hours=1)),
        **fields,
    )
    db.session.add(release)
    return release


def test_one_off_digest_is_scheduled_in_the_chosen_time_zone(app, staff_client):
    data = digest_form(
        staff_client, when="at", send_at="2031-07-01T08:30:15", timezone="America/New_York"
    )
    response = staff_client.post("/admin/digests", data=data)
    assert response.status_code == 303
    with app.app_context():
        digest = db.session.scalar(select(Digest))
        assert digest.send_at.isoformat() == "2031-07-01T12:30:15"  # EDT is UTC-4
        assert digest.status == DigestStatus.SCHEDULED and digest.language == "en"
    page = staff_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Scheduled for 2031-07-01 12:30 UTC." in page
    assert '<progress id="digest-progress"' in page
    assert 'http-equiv="refresh"' in page  # the no-script fallback
    assert "digest-progress.js" in page


@pytest.mark.parametrize(
    ("fields", "error_field"),
    [
        ({"when": "at", "send_at": "2001-01-01T00:00"}, "send_at"),
        ({"when": "at", "send_at": ""}, "send_at"),
        ({"when": "at", "send_at": "tomorrow"}, "send_at"),
        ({"when": "at", "send_at": "2031-01-01T00:00", "timezone": "Mars/Olympus"}, "timezone"),
        ({"language": "de"}, "language"),
        ({"subject": "line\nbreak"}, "subject"),
    ],
)
def test_bad_digest_requests_are_refused(app, staff_client, fields, error_field):
    response = staff_client.post("/admin/digests", data=digest_form(staff_client, **fields))
    assert response.status_code == 422
    assert f'id="{error_field}-error"' in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count(Digest.id))) == 0


def test_recurring_digest_is_saved_with_its_zone_and_can_be_paused(app, staff_client):
    data = {
        "csrf_token": csrf_token(staff_client, "/admin/digests"),
        "language": "fr",
        "subject": "",
        "every": "week",
        "weekday": "mon",
        "at": "08:00",
        "timezone": "Europe/Paris",
    }
    assert staff_client.post("/admin/digests/schedules", data=data).status_code == 303
    with app.app_context():
        schedule = db.session.scalar(select(DigestSchedule))
        assert (schedule.cron, schedule.timezone) == ("0 8 * * mon", "Europe/Paris")
        schedule_id = schedule.id
    page = staff_client.get("/admin/digests").get_data(as_text=True)
    assert "0 8 * * mon" in page and "Next: " in page
    token = csrf_token(staff_client, "/admin/digests")
    staff_client.post(f"/admin/digests/schedules/{schedule_id}/pause", data={"csrf_token": token})
    with app.app_context():
        assert db.session.get(DigestSchedule, schedule_id).status == ScheduleStatus.PAUSED
    staff_client.post(f"/admin/digests/schedules/{schedule_id}/cancel", data={"csrf_token": token})
    refused = staff_client.post(
        f"/admin/digests/schedules/{schedule_id}/resume", data={"csrf_token": token}
    )
    assert refused.status_code == 409
    bad = dict(data, at="25:99")
    assert staff_client.post("/admin/digests/schedules", data=bad).status_code == 422


def test_digest_preview_shows_the_email_escaped_in_a_sandbox(app, staff_client):
    with app.app_context():
        add_release(title='<script>alert("t")</script> Budget')
        digest = Digest(language="en", status=DigestStatus.SCHEDULED, send_at=utcnow())
        db.session.add(digest)
        db.session.commit()
        digest_id = digest.id
    page = staff_client.get(f"/admin/digests/{digest_id}/preview")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "<iframe" in html and " sandbox " in html
    assert '<script>alert("t")' not in html
    assert "Budget" in html
    assert "List-Unsubscribe" in html and "/unsubscribe/" in html


def test_digest_test_send_goes_to_one_address_only(app, staff_client, mailbox, run_worker):
    with app.app_context():
        add_release()
        add_subscriber("reader@example.org", language="en")
        tomorrow = utcnow() + timedelta(days=1)
        digest = Digest(language="en", status=DigestStatus.SCHEDULED, send_at=tomorrow)
        db.session.add(digest)
        db.session.commit()
        digest_id = digest.id
    path = f"/admin/digests/{digest_id}"
    token = csrf_token(staff_client, path)
    bad = staff_client.post(f"{path}/test", data={"csrf_token": token, "email": "nope"})
    assert bad.status_code == 422
    assert 'id="test-email-error"' in bad.get_data(as_text=True)
    good = staff_client.post(f"{path}/test", data={"csrf_token": token, "email": "qa@example.org"})
    assert good.status_code == 303
    with app.app_context():
        assert db.session.get(Digest, digest_id).status == DigestStatus.SCHEDULED
    run_worker()
    [copy] = mailbox.wait_for(1)
    assert copy.to == "qa@example.org"
    assert copy.header("Subject").startswith("[TEST] ")
    assert mailbox.to("reader@example.org") == []


def test_digest_pause_resume_cancel_and_history(app, staff_client, mailbox, run_worker):
    with app.app_context():
        add_release()
        for index in range(3):
            add_subscriber(f"reader{index}@example.org", language="en")
        later = Digest(
            language="en", status=DigestStatus.SCHEDULED, send_at=utcnow() + timedelta(days=1)
        )
        db.session.add(later)
        db.session.commit()
        later_id = later.id
    path = f"/admin/digests/{later_id}"
    token = csrf_token(staff_client, path)
    staff_client.post(f"{path}/pause", data={"csrf_token": token})
    with app.app_context():
        assert db.session.get(Digest, later_id).paused is True
    assert "Paused." in staff_client.get(path).get_data(as_text=True)
    staff_client.post(f"{path}/resume", data={"csrf_token": token})
    staff_client.post(f"{path}/cancel", data={"csrf_token": token})
    with app.app_context():
        cancelled = db.session.get(Digest, later_id)
        assert cancelled.status == DigestStatus.FAILED and cancelled.failure_reason == "cancelled"
    again = staff_client.post(f"{path}/pause", data={"csrf_token": token}, follow_redirects=True)
    assert "already finished" in again.get_data(as_text=True)

    # A digest sent now: the history and the progress endpoint show its counts.
    created = staff_client.post("/admin/digests", data=digest_form(staff_client))
    digest_id = int(created.headers["Location"].rsplit("/", 1)[1])
    run_worker()
    assert len(mailbox.wait_for(3)) == 3
    progress = staff_client.get(f"/admin/digests/{digest_id}/progress").get_json()
    assert progress["status"] == "sent" and progress["finished"] is True
    assert (progress["recipients"], progress["sent"], progress["failed"]) == (3, 3, 0)
    assert progress["summary"] == "Done: 3 sent, 0 failed, out of 3."
    history = staff_client.get("/admin/digests").get_data(as_text=True)
    assert re.search(r"<td>3</td><td>3</td><td>0</td>", history)
    finished = staff_client.get(f"/admin/digests/{digest_id}").get_data(as_text=True)
    assert 'http-equiv="refresh"' not in finished
    dashboard = staff_client.get("/admin/").get_data(as_text=True)
    assert re.search(r"<td>3</td><td>3</td><td>0</td>", dashboard)


# --- Hostile input ------------------------------------------------------------------------


def test_ids_too_large_for_the_database_are_not_found(app, staff_client):
    huge = "9" * 30
    for path in (
        f"/admin/subscribers/{huge}",
        f"/admin/releases/{huge}",
        f"/admin/digests/{huge}",
        f"/admin/digests/{huge}/progress",
        f"/admin/digests/{huge}/preview",
        "/admin/subscribers/9223372036854775807",
    ):
        assert staff_client.get(path).status_code == 404, path


@pytest.mark.parametrize(
    ("send_at", "timezone"),
    [
        ("0001-01-01T00:00", "Asia/Tokyo"),
        ("9999-12-31T23:59", "America/Los_Angeles"),
        ("1900-01-01T00:00", "Europe/Brussels"),
        ("2031-01-01T00:00+02:00", "Europe/Brussels"),
        ("2031-13-01T00:00", "Europe/Brussels"),
        ("x" * 5000, "Europe/Brussels"),
    ],
)
def test_impossible_times_are_refused_not_crashed(app, staff_client, send_at, timezone):
    digest = staff_client.post(
        "/admin/digests",
        data=digest_form(staff_client, when="at", send_at=send_at, timezone=timezone),
    )
    assert digest.status_code == 422
    release = staff_client.post(
        "/admin/releases/new",
        data=release_form(
            staff_client, "/admin/releases/new", published_at=send_at, timezone=timezone
        ),
    )
    assert release.status_code == 422
    assert 'id="published_at-error"' in release.get_data(as_text=True)


def test_overlong_search_is_refused(app, staff_client):
    assert staff_client.get("/admin/subscribers?q=" + "a" * 400).status_code == 400
    assert staff_client.get("/admin/subscribers/export.csv?q=" + "a" * 400).status_code == 400
