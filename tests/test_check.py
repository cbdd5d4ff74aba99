"""``flask --app newsletter check``: what is wrong is printed, and errors fail the command."""

from __future__ import annotations

from tests.conftest import free_port


def check(app) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(args=["check"])
    return result.exit_code, result.output


def test_a_sound_development_configuration_passes_with_warnings(app):
    code, output = check(app)
    assert code == 0, output
    assert "ok       database" in output and "schema at" in output
    assert "ok       mail relay" in output  # the test SMTP server answers
    assert "warning  rate limits" in output  # memory:// is fine for one process only
    assert "configuration OK" in output


def test_a_broken_production_configuration_lists_every_problem(app, tmp_path, monkeypatch):
    app.config.update(
        DEVELOPMENT=False,
        SECRET_KEY="short",
        PUBLIC_URL="http://news.example.org",
        MAIL_URL=f"smtp://127.0.0.1:{free_port()}?timeout=2",  # nothing listens there
        RATELIMIT_STORAGE_URI="memory://",
        METRICS_ALLOWED=["127.0.0.1", "not-a-network"],
    )
    monkeypatch.setenv("NEWSLETTER_DKIM_KEY_FILE", str(tmp_path / "missing.pem"))
    code, output = check(app)
    assert code == 1, output
    for expected in (
        "error    secret key           5 characters",
        "error    public URL",
        "error    mail relay",
        "error    rate limits",
        "error    metrics              not an address or network: not-a-network",
        "error    DKIM key",
    ):
        assert expected in output, (expected, output)
    assert "ok       database" in output


def test_redis_limits_and_a_readable_dkim_key_pass_in_production(app, tmp_path, monkeypatch):
    key = tmp_path / "dkim.pem"
    key.write_text(
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"
    )
    monkeypatch.setenv("NEWSLETTER_DKIM_KEY_FILE", str(key))
    app.config.update(DEVELOPMENT=False, RATELIMIT_STORAGE_URI="redis://127.0.0.1:6379/7")
    code, output = check(app)
    assert "ok       rate limits          redis storage answers" in output, output
    assert "ok       DKIM key" in output
    assert code == 0, output
