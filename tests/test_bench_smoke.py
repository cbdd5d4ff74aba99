"""The benchmark code works: the sending benchmark, at a tiny size, on SQLite.

Runs the real pipeline and both baselines against the counting SMTP server, so a change that
breaks ``make bench`` fails ``make test`` instead of being found on the day of a measurement.
"""

from __future__ import annotations

import pytest

from bench.common import Figure, render_table
from bench.sending import measure_database
from bench.smtp_counter import CountingSmtpServer

pytestmark = pytest.mark.slow


def test_sending_benchmark_delivers_every_message_and_reports_rates():
    with CountingSmtpServer() as server:
        # measure_database checks the digest is recorded sent to all 200 and that the server
        # counted exactly 200; the baselines count theirs.
        # Two rounds: the second digest must find releases of its own to send.
        run = measure_database("sqlite", server, 200, 20, rounds=2, with_ceiling=True)
        assert server.count == 200  # the last thing measured: the ceiling's 4 x 50 messages
    assert len(run.pairs) == 2 and len(run.ratios) == 2
    service, raw = run.median_pair
    assert service.messages == 200 and raw.messages == 200 and run.naive.messages == 20
    assert run.ceiling is not None and run.ceiling.messages == 200
    for result in (*(r for pair in run.pairs for r in pair), run.naive, run.ceiling):
        assert result.rate > 0
        # A realistic digest: 10 releases, about 15 KB a message (a little more since each
        # item links to its release page and the digest to its web version, issue 13).
        assert 12_000 < result.message_bytes < 24_000


def test_table_shows_value_baseline_and_ratio():
    table = render_table(
        [Figure("send digest", 900.0, "msg/s", 1000.0, "A: raw smtplib", goal=">= 0.9x")]
    )
    assert "900 msg/s" in table
    assert "1,000 msg/s (A: raw smtplib)" in table
    assert "0.90x" in table


def test_subscribe_baselines_answer_like_the_service(database_url, is_postgres, monkeypatch):
    """Both routes the subscribe benchmark compares against answer what the service answers;
    the floor route writes one row per new address (it needs PostgreSQL)."""
    from bench import bare_app

    bare = bare_app.app.test_client()
    assert bare.post("/api/v1/subscriptions", json={"email": "a@example.org"}).status_code == 202
    assert bare.post("/api/v1/subscriptions", json={"email": 3}).status_code == 422
    if not is_postgres:
        pytest.skip("the floor route of the subscribe benchmark runs on PostgreSQL only")
    from sqlalchemy.engine import make_url

    from bench import bare_db_app

    url = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    monkeypatch.setenv("BENCH_BARE_DATABASE_URL", url)
    monkeypatch.setattr(bare_db_app, "_connection", None)
    floor = bare_db_app.app.test_client()
    for email in ("one@example.org", "two@example.org", "one@example.org"):
        response = floor.post("/api/v1/subscriptions", json={"email": email})
        assert (response.status_code, response.get_json()) == (202, {"status": "pending"})
    connection = bare_db_app.connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM bare_subscriptions")
        assert cursor.fetchone()[0] == 2
        cursor.execute("DROP TABLE bare_subscriptions")
    connection.commit()
    connection.close()


def test_dkim_benchmark_signs_and_sends_every_message():
    from bench.dkim import dkim_figures

    # service_send inside checks every digest is recorded sent to all 60 and counted by the
    # server, signed with each algorithm in turn.
    figures = {figure.name: figure for figure in dkim_figures(full=False, recipients=60)}
    for algorithm in ("ed25519", "rsa"):
        cost = figures[f"DKIM signing cost per digest message, {algorithm}"]
        assert cost.value and cost.baseline and cost.value > 0
        signed = figures[f"send digest signed ({algorithm}), SQLite: rate vs raw smtplib"]
        assert signed.value and signed.value > 0


def test_counting_server_notes_arrival_times_and_recipients_for_the_shared_cap_section(
    tmp_path,
):
    import smtplib

    from bench.sharedcap import messages_sent_by

    path = tmp_path / "recipients.txt"
    with CountingSmtpServer(keep_times=2, recipients_path=str(path)) as server:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as connection:
            for address in ("a@example.org", "b@example.org", "a@example.org"):
                connection.sendmail("news@example.org", [address], b"Subject: x\r\n\r\nx\r\n")
        server.wait_for(3, timeout=10)
        times = server.arrival_times()
    assert len(times) == 2 and times[0] <= times[1]  # only as many as asked for
    assert path.read_text().split() == ["a@example.org", "b@example.org", "a@example.org"]
    summary = "worker idle after 3 passes: 0 outbox messages, 1 scheduled jobs run, 512 digest"
    assert messages_sent_by(summary + " messages sent, 0 digest deliveries failed") == 512
