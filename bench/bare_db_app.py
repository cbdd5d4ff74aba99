"""A second baseline for the subscribe benchmark: the bare route plus the least a durable
subscription can cost, one raw psycopg INSERT and its COMMIT per request (no ORM, no
validation, no email). ``gunicorn bench.bare_db_app:app`` with ``BENCH_BARE_DATABASE_URL``
naming a PostgreSQL database (a libpq URL)."""

from __future__ import annotations

import os

import psycopg
from flask import Flask, jsonify, request

app = Flask(__name__)
_connection: psycopg.Connection | None = None


def connection() -> psycopg.Connection:
    """One connection per gunicorn worker, opened on first use (after the fork)."""
    global _connection
    if _connection is None:
        _connection = psycopg.connect(os.environ["BENCH_BARE_DATABASE_URL"])
        with _connection.cursor() as cursor:
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS bare_subscriptions "
                "(id bigserial PRIMARY KEY, email text UNIQUE, created_at timestamp)"
            )
        _connection.commit()
    return _connection


@app.post("/api/v1/subscriptions")
def create_subscription():
    payload = request.get_json(silent=True) or {}
    email = payload.get("email")
    if not isinstance(email, str):
        return jsonify(error={"code": "invalid", "fields": {"email": "Required."}}), 422
    db = connection()
    with db.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bare_subscriptions (email, created_at) VALUES (%s, now()) "
            "ON CONFLICT (email) DO NOTHING",
            (email,),
        )
    db.commit()
    return jsonify(status="pending"), 202
