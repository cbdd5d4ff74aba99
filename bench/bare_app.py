"""The baseline for the subscribe benchmark: a bare Flask route that parses the same JSON body
and answers the same 202, with no database, validation or email. ``gunicorn bench.bare_app:app``.
"""

from __future__ import annotations

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/api/v1/subscriptions")
def create_subscription():
    """Read the body as the real route does and answer what it answers."""
    payload = request.get_json(silent=True) or {}
    if not isinstance(payload.get("email"), str):
        return jsonify(error={"code": "invalid", "fields": {"email": "Required."}}), 422
    return jsonify(status="pending"), 202
