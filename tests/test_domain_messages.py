"""Messages the domain gives people (issue 15): said in the reader's language, in the console
and the API, and every one of them has its French in the catalog."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

from tests.support.accounts import make_user
from tests.support.digests import staff_token
from tests.test_admin import log_in, release_form

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "newsletter/translations/fr/LC_MESSAGES/messages.po"


def test_every_message_in_the_code_has_its_french(tmp_path):
    template = tmp_path / "messages.pot"
    subprocess.run(
        [
            str(Path(sys.executable).parent / "pybabel"),
            "-q",
            "extract",
            "-F",
            "babel.cfg",
            "-k",
            "translatable",
            "-k",
            "Message",
            "-o",
            str(template),
            ".",
        ],
        cwd=ROOT,
        check=True,
    )
    with template.open("rb") as extracted, CATALOG.open("rb") as catalog:
        wanted = {message.id for message in read_po(extracted) if message.id}
        french = {message.id: message.string for message in read_po(catalog)}
    missing = sorted(str(msgid) for msgid in wanted if not french.get(msgid))
    assert missing == []
    assert {"Required.", "Not a valid cron expression: %(reason)s"} <= wanted


def test_the_french_console_says_release_errors_in_french(app):
    from newsletter.extensions import db
    from newsletter.models import User

    user_id = make_user(app, "redaction@example.org", staff=True, language="fr")
    client = app.test_client()
    with app.app_context():
        log_in(app, client, db.session.get(User, user_id))
    with client.session_transaction() as session:
        session["lang"] = "fr"
    data = release_form(
        client, "/admin/releases/new", title="", url="ftp://example.org/x", published_at=""
    )
    page = client.post("/admin/releases/new", data=data)
    html = page.get_data(as_text=True)
    assert page.status_code == 422
    assert "Obligatoire." in html and "Une adresse http ou https." in html
    assert "Required." not in html and "Must be an http or https URL." not in html


def test_the_api_says_field_errors_in_the_callers_language(app, client):
    with app.app_context():
        token = staff_token("ops@example.org")
    body = {"language": "fr", "cron": "0 8 * * funday"}

    def field_errors(language: str) -> dict:
        headers = {"Authorization": f"Bearer {token}", "Accept-Language": language}
        answer = client.post("/api/v1/schedules", json=body, headers=headers)
        assert answer.status_code == 422
        return answer.get_json()["error"]

    english = field_errors("en")
    assert english["message"] == "Check the highlighted fields."
    assert english["fields"]["cron"].startswith("Not a valid cron expression: ")
    french = field_errors("fr")
    assert french["message"] == "Vérifiez les champs signalés."
    assert french["fields"]["cron"].startswith("Expression cron non valide : ")
