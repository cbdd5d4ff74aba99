"""Staff roles, scoped API tokens and the audit log (issue 14): one permission table enforced
for console and API alike, tokens that never outgrow their owner's role, and an append-only
record of who did what."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from newsletter.domain.accounts import create_staff
from newsletter.domain.api_tokens import issue_api_token
from newsletter.extensions import db
from newsletter.models import ApiToken, AuditEntry, Digest, Release, User, utcnow
from tests.support.accounts import STRONG_PASSWORD, login, post_form, speak_english
from tests.support.digests import add_subscribers


def make_staff(app, email: str, role: str) -> int:
    with app.app_context():
        user = create_staff(email, STRONG_PASSWORD, language="en", role=role)
        db.session.commit()
        return user.id


def token_for(app, email: str, scopes=None, expires_at=None) -> str:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email_key == email))
        token = issue_api_token(user, name="t", scopes=scopes, expires_at=expires_at)
        db.session.commit()
        return token


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def audit_entries(app, action: str | None = None) -> list[AuditEntry]:
    with app.app_context():
        query = select(AuditEntry).order_by(AuditEntry.id)
        if action:
            query = query.where(AuditEntry.action == action)
        rows = list(db.session.scalars(query))
        db.session.expunge_all()
        return rows


def logged_in(app, email: str):
    client = app.test_client()
    speak_english(client)
    response = login(client, email, STRONG_PASSWORD)
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    return client


RELEASE = {"title": "Budget", "summary": "s", "body": "<p>b</p>", "language": "fr"}


# --- Tokens: scopes, role, expiry, revocation ---------------------------------------------


def test_a_releases_token_cannot_create_a_digest(app, client):
    make_staff(app, "owner@example.org", "owner")
    token = token_for(app, "owner@example.org", scopes=["releases:write"])
    refused = client.post("/api/v1/digests", json={"language": "fr"}, headers=bearer(token))
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "forbidden"
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(Digest)) == 0
    created = client.post("/api/v1/releases", json=RELEASE, headers=bearer(token))
    assert created.status_code == 201, created.get_json()


def test_a_token_never_exceeds_its_owners_role(app, client):
    make_staff(app, "editor@example.org", "editor")
    # Scopes beyond the role, written straight to the table: still refused at use time.
    token = token_for(app, "editor@example.org", scopes=["digests:send", "releases:write"])
    assert (
        client.post("/api/v1/digests", json={"language": "fr"}, headers=bearer(token)).status_code
        == 403
    )
    assert client.post("/api/v1/releases", json=RELEASE, headers=bearer(token)).status_code == 201


def test_demoting_an_owner_demotes_their_tokens_at_once(app, client):
    make_staff(app, "first@example.org", "owner")
    make_staff(app, "second@example.org", "owner")
    token = token_for(app, "second@example.org")  # the role's full permissions
    assert (
        client.post("/api/v1/digests", json={"language": "fr"}, headers=bearer(token)).status_code
        == 201
    )
    owner = logged_in(app, "first@example.org")
    with app.app_context():
        second = db.session.scalar(select(User).where(User.email_key == "second@example.org"))
        second_id = second.id
    response = post_form(
        owner, "/admin/staff", f"/admin/staff/{second_id}/role", {"role": "viewer"}
    )
    assert response.status_code == 303
    assert (
        client.post("/api/v1/digests", json={"language": "fr"}, headers=bearer(token)).status_code
        == 403
    )
    assert client.get("/api/v1/digests", headers=bearer(token)).status_code == 200


def test_expired_and_revoked_tokens_get_401(app, client):
    make_staff(app, "owner@example.org", "owner")
    expired = token_for(app, "owner@example.org", expires_at=utcnow() - timedelta(seconds=1))
    live = token_for(app, "owner@example.org", expires_at=utcnow() + timedelta(days=1))
    assert client.get("/api/v1/releases", headers=bearer(expired)).status_code == 401
    assert client.get("/api/v1/releases", headers=bearer(live)).status_code == 200
    with app.app_context():
        row = db.session.scalars(select(ApiToken).order_by(ApiToken.id.desc())).first()
        assert row.last_used_at is not None
        live_id = row.id
    owner = logged_in(app, "owner@example.org")
    response = post_form(owner, "/admin/tokens", f"/admin/tokens/{live_id}/revoke", {})
    assert response.status_code == 303
    assert client.get("/api/v1/releases", headers=bearer(live)).status_code == 401
    [entry] = audit_entries(app, "token.revoke")
    assert entry.target_ids == str(live_id) and entry.actor_label == "owner@example.org"


def test_a_disabled_staff_members_token_gets_401(app, client):
    make_staff(app, "owner@example.org", "owner")
    editor_id = make_staff(app, "editor@example.org", "editor")
    token = token_for(app, "editor@example.org")
    assert client.get("/api/v1/releases", headers=bearer(token)).status_code == 200
    owner = logged_in(app, "owner@example.org")
    post_form(owner, "/admin/staff", f"/admin/staff/{editor_id}/disable", {})
    assert client.get("/api/v1/releases", headers=bearer(token)).status_code == 401


def test_the_last_owner_cannot_be_demoted_or_disabled(app):
    owner_id = make_staff(app, "owner@example.org", "owner")
    owner = logged_in(app, "owner@example.org")
    post_form(owner, "/admin/staff", f"/admin/staff/{owner_id}/role", {"role": "editor"})
    page = owner.get("/admin/staff").get_data(as_text=True)
    assert "There must stay at least one active owner." in page
    with app.app_context():
        assert db.session.get(User, owner_id).staff_role == "owner"


def test_console_tokens_are_created_within_the_role(app, client):
    make_staff(app, "editor@example.org", "editor")
    editor = logged_in(app, "editor@example.org")
    refused = post_form(
        editor,
        "/admin/tokens",
        "/admin/tokens",
        {"scope": ["digests:send"], "expires_in_days": "7"},
    )
    assert refused.status_code == 422
    created = post_form(
        editor,
        "/admin/tokens",
        "/admin/tokens",
        {"scope": ["releases:write"], "expires_in_days": "7", "name": "cms"},
    )
    assert created.status_code == 201
    page = created.get_data(as_text=True)
    token = page.split('<code id="new-token">')[1].split("</code>")[0]
    assert client.post("/api/v1/releases", json=RELEASE, headers=bearer(token)).status_code == 201
    assert client.get("/api/v1/digests", headers=bearer(token)).status_code == 403
    with app.app_context():
        row = db.session.scalar(select(ApiToken))
        assert row.scopes == "releases:write"
        assert timedelta(days=6) < row.expires_at - utcnow() <= timedelta(days=7)


# --- Console: one table, pages hide what a role cannot do --------------------------------


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("owner", {"export", "send", "release", "import", "staff", "audit"}),
        ("editor", {"release"}),
        ("sender", {"send"}),
        ("viewer", set()),
    ],
)
def test_each_role_sees_and_may_do_only_its_part(app, role, allowed):
    make_staff(app, "someone@example.org", role)
    console = logged_in(app, "someone@example.org")
    subscribers = console.get("/admin/subscribers").get_data(as_text=True)
    assert ("export.csv" in subscribers) == ("export" in allowed)
    assert ("Import a CSV file" in subscribers) == ("import" in allowed)
    assert (console.get("/admin/subscribers/export.csv").status_code == 200) == (
        "export" in allowed
    )
    digests = console.get("/admin/digests").get_data(as_text=True)
    assert ("Schedule the digest" in digests) == ("send" in allowed)
    sent = post_form(console, "/admin/digests", "/admin/digests", {"language": "fr", "when": "now"})
    assert (sent.status_code == 303) == ("send" in allowed), sent.status_code
    releases = console.get("/admin/releases").get_data(as_text=True)
    assert ("New release" in releases) == ("release" in allowed)
    assert (console.get("/admin/releases/new").status_code == 200) == ("release" in allowed)
    nav = console.get("/admin/").get_data(as_text=True)
    assert ('href="/admin/staff"' in nav) == ("staff" in allowed)
    assert (console.get("/admin/staff").status_code == 200) == ("staff" in allowed)
    assert (console.get("/admin/audit").status_code == 200) == ("audit" in allowed)
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(Digest)) == (
            1 if "send" in allowed else 0
        )


def test_every_console_and_api_view_names_its_permission(app):
    """The one table is only one place if no staff view escapes it."""
    unguarded = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(("/admin", "/api/v1", "/api/openapi")):
            continue
        if rule.endpoint in ("staff_admin.accept_invitation_page",):
            continue
        view = app.view_functions[rule.endpoint]
        if not getattr(view, "required_permissions", None):
            unguarded.append(rule.rule)
    public = {
        "/api/v1/subscriptions",
        "/api/v1/account/password-reset",
        "/api/v1/account/password-reset/confirm",
        # Providers' feedback webhooks: no staff behind them; a signature (SES) or a shared
        # token (Postmark) authenticates each call (tests/test_webhooks.py).
        "/api/v1/webhooks/ses",
        "/api/v1/webhooks/postmark",
    }
    assert [rule for rule in unguarded if rule not in public and "/account" not in rule] == []


# --- Command line -----------------------------------------------------------------------


def test_staff_create_with_a_role_and_scoped_token(app, runner, client):
    result = runner.invoke(
        args=["staff", "create", "writer@example.org", "--role", "editor"],
        input=STRONG_PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        args=[
            "staff",
            "token",
            "writer@example.org",
            "--scope",
            "releases:write",
            "--expires-in",
            "2h",
        ]
    )
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert client.post("/api/v1/releases", json=RELEASE, headers=bearer(token)).status_code == 201
    assert client.get("/api/v1/releases", headers=bearer(token)).status_code == 403
    default = runner.invoke(args=["staff", "token", "writer@example.org"]).output.strip()
    assert client.get("/api/v1/releases", headers=bearer(default)).status_code == 200
    assert (
        client.post("/api/v1/digests", json={"language": "fr"}, headers=bearer(default)).status_code
        == 403
    )
    bad = runner.invoke(args=["staff", "token", "writer@example.org", "--scope", "everything"])
    assert bad.exit_code != 0 and "unknown scope" in bad.output
    with app.app_context():
        writer = db.session.scalar(select(User).where(User.email_key == "writer@example.org"))
        assert writer.staff_role == "editor"
    assert [e.action for e in audit_entries(app)] == [
        "staff.create",
        "token.create",
        "release.create",
        "token.create",
    ]


def test_staff_create_without_a_role_makes_an_owner(app, runner):
    result = runner.invoke(
        args=["staff", "create", "boss@example.org"], input=STRONG_PASSWORD + "\n"
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert (
            db.session.scalar(select(User.staff_role).where(User.email_key == "boss@example.org"))
            == "owner"
        )


# --- Invitations ------------------------------------------------------------------------


def test_an_owner_invites_a_sender_by_email(app, mailbox, run_worker):
    make_staff(app, "owner@example.org", "owner")
    owner = logged_in(app, "owner@example.org")
    response = post_form(
        owner, "/admin/staff", "/admin/staff/invite", {"email": "new@example.org", "role": "sender"}
    )
    assert response.status_code == 303
    run_worker()
    [invitation] = mailbox.wait_for(1)
    assert invitation.to == "new@example.org"
    link = next(url for url in invitation.links() if "/admin/invitation/" in url)
    path = link.split("news.example.org", 1)[1]
    visitor = app.test_client()
    speak_english(visitor)
    assert "Choose a password" in visitor.get(path).get_data(as_text=True)
    accepted = post_form(visitor, path, path, {"password": STRONG_PASSWORD})
    assert accepted.status_code == 303
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email_key == "new@example.org"))
        assert user.is_staff and user.staff_role == "sender"
    assert visitor.get(path).status_code == 410  # used once
    sender = logged_in(app, "new@example.org")
    assert sender.get("/admin/digests").status_code == 200
    assert sender.get("/admin/staff").status_code == 403
    actions = [e.action for e in audit_entries(app)]
    assert actions.count("staff.invite") == 1 and actions.count("staff.invitation_accepted") == 1


def test_a_tampered_invitation_is_a_clear_page(client):
    response = client.get("/admin/invitation/not-a-token")
    assert response.status_code == 404
    assert "not valid" in response.get_data(as_text=True) or "valide" in response.get_data(
        as_text=True
    )


# --- Audit log --------------------------------------------------------------------------


def test_each_api_action_is_logged_once_with_actor_and_target(app, client):
    make_staff(app, "owner@example.org", "owner")
    token = token_for(app, "owner@example.org")
    with app.app_context():
        token_id = db.session.scalar(select(ApiToken.id))
        user_id = db.session.scalar(select(User.id))
    release = client.post("/api/v1/releases", json=RELEASE, headers=bearer(token)).get_json()
    client.patch(f"/api/v1/releases/{release['id']}", json={"title": "B2"}, headers=bearer(token))
    send_at = (utcnow() + timedelta(days=1)).isoformat() + "Z"
    digest = client.post(
        "/api/v1/digests", json={"language": "fr", "send_at": send_at}, headers=bearer(token)
    ).get_json()
    client.post(f"/api/v1/digests/{digest['id']}/pause", headers=bearer(token))
    client.post(f"/api/v1/digests/{digest['id']}/cancel", headers=bearer(token))
    schedule = client.post(
        "/api/v1/schedules",
        json={"language": "fr", "every": "day", "at": "08:00"},
        headers=bearer(token),
    ).get_json()
    client.delete(f"/api/v1/schedules/{schedule['id']}", headers=bearer(token))
    # Reads and refused calls write nothing.
    client.get("/api/v1/releases", headers=bearer(token))
    client.post("/api/v1/releases", json={}, headers=bearer(token))
    entries = audit_entries(app)
    assert [(e.action, e.target_type, e.target_ids) for e in entries] == [
        ("release.create", "release", str(release["id"])),
        ("release.update", "release", str(release["id"])),
        ("digest.create", "digest", str(digest["id"])),
        ("digest.pause", "digest", str(digest["id"])),
        ("digest.cancel", "digest", str(digest["id"])),
        ("schedule.create", "schedule", str(schedule["id"])),
        ("schedule.cancelled", "schedule", str(schedule["id"])),
    ]
    for entry in entries:
        assert entry.actor_user_id == user_id
        assert entry.actor_token_id == token_id
        assert entry.actor_label == "owner@example.org"
        assert entry.ip == "127.0.0.1"


def test_console_changes_exports_and_logins_are_logged(app):
    make_staff(app, "owner@example.org", "owner")
    add_subscribers_in(app, 3)
    owner = logged_in(app, "owner@example.org")
    export = owner.get("/admin/subscribers/export.csv?status=confirmed")
    assert export.status_code == 200
    post_form(
        owner,
        "/admin/releases/new",
        "/admin/releases/new",
        {**RELEASE, "published_at": "2026-01-02T10:00", "timezone": "UTC"},
    )
    entries = audit_entries(app)
    assert [e.action for e in entries] == ["staff.login", "subscribers.export", "release.create"]
    login_entry, export_entry, release_entry = entries
    assert login_entry.actor_label == "owner@example.org" and login_entry.actor_token_id is None
    assert json.loads(export_entry.details) == {"format": "csv", "status": "confirmed"}
    with app.app_context():
        assert release_entry.target_ids == str(db.session.scalar(select(Release.id)))


def add_subscribers_in(app, count: int) -> None:
    with app.app_context():
        add_subscribers(count, language="fr")
        db.session.commit()


def test_audit_page_filters_and_exports(app):
    make_staff(app, "owner@example.org", "owner")
    make_staff(app, "editor@example.org", "editor")
    editor = logged_in(app, "editor@example.org")
    post_form(
        editor,
        "/admin/releases/new",
        "/admin/releases/new",
        {**RELEASE, "published_at": "2026-01-02T10:00", "timezone": "UTC"},
    )
    owner = logged_in(app, "owner@example.org")
    page = owner.get("/admin/audit?action=release.").get_data(as_text=True)
    assert "release.create" in page and "staff.login" not in page
    page = owner.get("/admin/audit?actor=owner@").get_data(as_text=True)
    assert "release.create" not in page and "staff.login" in page
    assert owner.get("/admin/audit?since=yesterday").status_code == 400
    exported = owner.get("/admin/audit/export.csv?action=release.create")
    assert exported.status_code == 200
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    assert [(row["action"], row["actor"]) for row in rows] == [
        ("release.create", "editor@example.org")
    ]
    as_json = owner.get("/admin/audit/export.json").get_json()
    # The export of the log is written to the log before it is read.
    assert as_json[0]["action"] == "audit.export"
    assert {entry["action"] for entry in as_json} >= {"staff.login", "release.create"}
    assert editor.get("/admin/audit").status_code == 403
    assert editor.get("/admin/audit/export.csv").status_code == 403


def test_the_database_refuses_to_change_or_delete_audit_entries(app, is_postgres):
    if not is_postgres:
        pytest.skip("the append-only trigger is PostgreSQL's (SQLite runs the tests' cleanup)")
    make_staff(app, "owner@example.org", "owner")
    logged_in(app, "owner@example.org")
    with app.app_context():
        for statement in ("UPDATE audit_log SET action = 'nothing'", "DELETE FROM audit_log"):
            with pytest.raises(Exception, match="append-only"):
                db.session.execute(text(statement))
            db.session.rollback()
        assert db.session.scalar(select(AuditEntry.action)) == "staff.login"


# --- Audit entries of console actions: one entry each, with actor and target --------------


def owner_console(app) -> tuple[object, int]:
    owner_id = make_staff(app, "owner@example.org", "owner")
    return logged_in(app, "owner@example.org"), owner_id


def the_entry(app, action: str) -> AuditEntry:
    """The one entry of ``action`` (there must be exactly one)."""
    [entry] = audit_entries(app, action)
    return entry


def assert_by_owner(entry: AuditEntry, owner_id: int) -> None:
    assert (entry.actor_user_id, entry.actor_label, entry.actor_token_id) == (
        owner_id,
        "owner@example.org",
        None,
    )
    assert entry.ip == "127.0.0.1"


def test_a_subscriber_import_is_logged(app):
    from tests.test_admin import post_import

    owner, owner_id = owner_console(app)
    csv_text = "email,consent_at\r\nnew@example.org,2026-01-02T10:00:00Z\r\nother@example.org,\r\n"
    assert post_import(owner, csv_text, step="import").status_code == 200
    entry = the_entry(app, "subscribers.import")
    assert_by_owner(entry, owner_id)
    assert (entry.target_type, entry.target_ids) == ("subscribers", None)
    assert json.loads(entry.details) == {"confirmed": 1, "pending": 1, "rows": 2, "language": "fr"}
    assert "new@example.org" not in entry.details


def test_a_feed_import_is_logged(app):
    from tests.test_admin import FEED, post_feed

    owner, owner_id = owner_console(app)
    assert post_feed(owner, file=FEED).status_code == 200
    entry = the_entry(app, "releases.import")
    assert_by_owner(entry, owner_id)
    assert (entry.target_type, entry.target_ids) == ("releases", None)
    details = json.loads(entry.details)
    assert (details["source"], details["created"], details["updated"]) == ("feed.xml", 2, 0)


def test_a_role_change_is_logged(app):
    owner, owner_id = owner_console(app)
    editor_id = make_staff(app, "editor@example.org", "editor")
    changed = post_form(owner, "/admin/staff", f"/admin/staff/{editor_id}/role", {"role": "sender"})
    assert changed.status_code == 303
    entry = the_entry(app, "staff.role")
    assert_by_owner(entry, owner_id)
    assert (entry.target_type, entry.target_ids) == ("user", str(editor_id))
    assert json.loads(entry.details) == {"from": "editor", "to": "sender"}


def test_disabling_and_enabling_staff_is_logged(app):
    owner, owner_id = owner_console(app)
    editor_id = make_staff(app, "editor@example.org", "editor")
    for action in ("disable", "enable"):
        done = post_form(owner, "/admin/staff", f"/admin/staff/{editor_id}/{action}", {})
        assert done.status_code == 303
        entry = the_entry(app, f"staff.{action}")
        assert_by_owner(entry, owner_id)
        assert (entry.target_type, entry.target_ids) == ("user", str(editor_id))
    # A refused disable (one's own account) writes nothing.
    post_form(owner, "/admin/staff", f"/admin/staff/{owner_id}/disable", {})
    assert len(audit_entries(app, "staff.disable")) == 1


def test_webhook_endpoint_changes_are_logged(app):
    from newsletter.models import WebhookEndpoint

    owner, owner_id = owner_console(app)
    created = post_form(
        owner,
        "/admin/webhooks",
        "/admin/webhooks",
        {"url": "https://hooks.example.org/in", "events": ["subscriber.confirmed"]},
    )
    assert created.status_code == 303
    with app.app_context():
        endpoint_id = db.session.scalar(select(WebhookEndpoint.id))
    entry = the_entry(app, "webhook.create")
    assert_by_owner(entry, owner_id)
    assert (entry.target_type, entry.target_ids) == ("webhook", str(endpoint_id))
    assert json.loads(entry.details) == {
        "url": "https://hooks.example.org/in",
        "events": "subscriber.confirmed",
    }
    for action in ("disable", "enable"):
        path = f"/admin/webhooks/{endpoint_id}/{action}"
        assert post_form(owner, "/admin/webhooks", path, {}).status_code == 303
        entry = the_entry(app, f"webhook.{action}")
        assert_by_owner(entry, owner_id)
        assert (entry.target_type, entry.target_ids) == ("webhook", str(endpoint_id))


def test_lifting_a_suppression_is_logged(app):
    from newsletter.domain.suppressions import SuppressionKeys, suppress
    from newsletter.models import Suppression

    owner, owner_id = owner_console(app)
    with app.app_context():
        suppress(SuppressionKeys.from_config(app.config), "gone@example.org", "hard_bounce", "x")
        db.session.commit()
        suppression_id = db.session.scalar(select(Suppression.id))
    path = f"/admin/suppressions/{suppression_id}/lift"
    assert post_form(owner, "/admin/suppressions", path, {}).status_code == 303
    entry = the_entry(app, "suppression.lift")
    assert_by_owner(entry, owner_id)
    assert (entry.target_type, entry.target_ids) == ("suppression", str(suppression_id))
    with app.app_context():
        assert db.session.get(Suppression, suppression_id) is None


def test_test_sends_are_logged_with_a_hash_of_the_address(app, client):
    """Console and API test sends: the digest as target, the recipient only as a keyed hash
    (the log is append-only, so it must never hold an address an erasure would have to take
    out), the same hash both ways."""
    owner, owner_id = owner_console(app)
    with app.app_context():
        digest = Digest(language="en", status="scheduled", send_at=utcnow())
        db.session.add(digest)
        db.session.commit()
        digest_id = digest.id
    page = f"/admin/digests/{digest_id}"
    sent = post_form(owner, page, f"{page}/test", {"email": "Proof@Example.org"})
    assert sent.status_code == 303
    token = token_for(app, "owner@example.org")
    with app.app_context():
        token_id = db.session.scalar(select(ApiToken.id))
    by_api = client.post(
        f"/api/v1/digests/{digest_id}/test-send",
        json={"email": "proof@example.org"},
        headers=bearer(token),
    )
    assert by_api.status_code == 202
    console_entry, api_entry = audit_entries(app, "digest.test_send")
    assert_by_owner(console_entry, owner_id)
    assert (api_entry.actor_user_id, api_entry.actor_token_id) == (owner_id, token_id)
    for entry in (console_entry, api_entry):
        assert (entry.target_type, entry.target_ids) == ("digest", str(digest_id))
        assert "proof@" not in entry.details.casefold()
    assert json.loads(console_entry.details) == json.loads(api_entry.details)
    assert len(json.loads(console_entry.details)["to_hash"]) == 64
