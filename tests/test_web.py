"""Cross-cutting web behaviour: sessions, error shapes, security headers."""

from __future__ import annotations


def test_login_only_pages_answer_json_clients_with_401(client):
    response = client.get("/account/data", headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_login_only_pages_send_people_to_the_login_page_and_back(client):
    page = client.get("/account")
    assert page.status_code == 302
    assert page.headers["Location"].startswith("/account/login?next=/account")


def test_pages_carry_security_headers(client):
    response = client.get("/subscribe")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"


def test_error_pages_are_pages_for_people_and_json_for_clients(client):
    page = client.get("/no-such-page", headers={"Accept-Language": "en"})
    assert page.status_code == 404
    assert page.mimetype == "text/html"
    assert "This page does not exist." in page.get_data(as_text=True)
    api = client.get(
        "/no-such-page", headers={"Accept": "application/json", "Accept-Language": "en"}
    )
    assert api.status_code == 404
    assert api.get_json() == {
        "error": {"code": "not_found", "message": "This page does not exist.", "fields": {}}
    }


def test_pages_follow_the_chosen_language(client):
    english = client.get("/subscribe?lang=en")
    assert "Subscribe to the newsletter" in english.get_data(as_text=True)
    # The choice sticks for the session, whatever the browser asks for.
    again = client.get("/subscribe", headers={"Accept-Language": "fr"})
    assert '<html lang="en">' in again.get_data(as_text=True)
    french = client.get("/subscribe?lang=fr")
    assert "S’abonner à la lettre d’information" in french.get_data(as_text=True)
