"""SES (SNS-signed) and Postmark webhooks. The SNS signature is checked for real: the test makes
its own RSA key and certificate and serves the certificate over HTTP from a local server that
the config allows as the certificate source (instead of sns.<region>.amazonaws.com)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

from newsletter.extensions import db
from newsletter.models import InboundMessage, Subscriber, Suppression
from tests.conftest import free_port
from tests.support.feedback import add_subscriber
from tests.support.live import ServedInThread

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-feedback"
POSTMARK_TOKEN = "pm-token-0123456789"


def make_cert() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


class CertServer(ServedInThread):
    """Serves ``/cert.pem`` and counts hits on ``/confirm`` (the SubscribeURL)."""

    def __init__(self, pem: bytes) -> None:
        self.pem = pem
        self.confirmations = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                if self.path.startswith("/cert"):
                    body = server.pem
                elif self.path.startswith("/confirm"):
                    server.confirmations += 1
                    body = b"<ConfirmSubscriptionResponse/>"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def signing():
    key, pem = make_cert()
    with CertServer(pem) as server:
        yield key, server


@pytest.fixture
def app_config(app_config, signing):
    _key, server = signing
    app_config["SES_TOPIC_ARNS"] = [TOPIC]
    app_config["SNS_ALLOWED_URL"] = rf"^http://127\.0\.0\.1:{server.port}/"
    app_config["POSTMARK_WEBHOOK_TOKEN"] = POSTMARK_TOKEN
    return app_config


SIGNED = {
    "Notification": ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"],
    "SubscriptionConfirmation": [
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ],
}


def sns_message(key, server, kind: str, version: str = "1", **fields) -> dict:
    message = {
        "Type": kind,
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": TOPIC,
        "Timestamp": "2026-12-01T20:00:00.000Z",
        "SignatureVersion": version,
        "SigningCertURL": f"{server.base}/cert.pem",
        **fields,
    }
    text = "".join(
        f"{name}\n{message[name]}\n" for name in SIGNED[kind] if name in message
    ).encode()
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    message["Signature"] = base64.b64encode(
        key.sign(text, padding.PKCS1v15(), algorithm)
    ).decode()
    return message


def ses_bounce(email: str, permanent: bool = True) -> str:
    return json.dumps(
        {
            "notificationType": "Bounce",
            "bounce": {
                "bounceType": "Permanent" if permanent else "Transient",
                "bounceSubType": "General",
                "bouncedRecipients": [{"emailAddress": email, "status": "5.1.1"}],
            },
            "mail": {"source": "news@example.org", "destination": [email]},
        }
    )


def ses_complaint(email: str) -> str:
    return json.dumps(
        {
            "notificationType": "Complaint",
            "complaint": {
                "complainedRecipients": [{"emailAddress": email}],
                "complaintFeedbackType": "abuse",
            },
        }
    )


def post_sns(client, message: dict):
    # SNS posts JSON with a text/plain content type.
    return client.post(
        "/api/v1/webhooks/ses",
        data=json.dumps(message),
        headers={"Content-Type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "x"},
    )


def statuses() -> dict[str, str]:
    db.session.expire_all()
    return dict(db.session.execute(select(Subscriber.email, Subscriber.status)).all())


@pytest.mark.parametrize("version", ["1", "2"])
def test_signed_ses_bounce_and_complaint_are_applied(app, client, signing, version):
    key, server = signing
    with app.app_context():
        add_subscriber("gone@example.com")
        add_subscriber("angry@example.com")
        add_subscriber("calm@example.com")
    bounce = sns_message(
        key, server, "Notification", version, Message=ses_bounce("gone@example.com")
    )
    response = post_sns(client, bounce)
    assert response.status_code == 200, response.get_json()
    complaint = sns_message(
        key, server, "Notification", version, Message=ses_complaint("angry@example.com"),
        Subject="Amazon SES Email Event Notification",
    )
    assert post_sns(client, complaint).status_code == 200
    with app.app_context():
        assert statuses() == {
            "gone@example.com": "bounced",
            "angry@example.com": "unsubscribed",
            "calm@example.com": "confirmed",
        }
        assert db.session.scalar(select(func.count(Suppression.id))) == 2


def test_tampered_or_foreign_sns_messages_get_4xx_and_change_nothing(app, client, signing):
    key, server = signing
    with app.app_context():
        add_subscriber("gone@example.com")
    good = sns_message(key, server, "Notification", Message=ses_bounce("gone@example.com"))
    tampered = {**good, "Message": ses_bounce("gone@example.com").replace("General", "Other")}
    other_key, _pem = make_cert()
    forged = sns_message(other_key, server, "Notification", Message=ses_bounce("gone@example.com"))
    foreign_cert = {**good, "SigningCertURL": "https://evil.example.com/cert.pem"}
    foreign_topic = sns_message(
        key, server, "Notification", Message=ses_bounce("gone@example.com"),
        TopicArn="arn:aws:sns:eu-west-1:999999999999:other",
    )
    unsigned = {k: v for k, v in good.items() if k != "Signature"}
    bad_version = {**good, "SignatureVersion": "3"}
    for message in (tampered, forged, foreign_cert, foreign_topic, unsigned, bad_version):
        response = post_sns(client, message)
        assert 400 <= response.status_code < 500, response.status_code
        assert set(response.get_json()["error"]) >= {"code", "message"}
    for body in (b"", b"not json", b"[1, 2]", b'{"Type": 5}'):
        response = client.post("/api/v1/webhooks/ses", data=body)
        assert 400 <= response.status_code < 500
    with app.app_context():
        assert statuses() == {"gone@example.com": "confirmed"}
        assert db.session.scalar(select(func.count(InboundMessage.id))) == 0
    # The genuine one still works.
    assert post_sns(client, good).status_code == 200


def test_subscription_confirmation_fetches_the_subscribe_url(app, client, signing):
    key, server = signing
    before = server.confirmations
    message = sns_message(
        key, server, "SubscriptionConfirmation",
        Message="You have chosen to subscribe to the topic.",
        SubscribeURL=f"{server.base}/confirm?Token=abc",
        Token="abc",
    )
    response = post_sns(client, message)
    assert response.status_code == 200
    assert response.get_json() == {"status": "confirmed"}
    assert server.confirmations == before + 1
    # A SubscribeURL outside the allowed source is never fetched (even when signed).
    elsewhere = sns_message(
        key, server, "SubscriptionConfirmation",
        Message="x", SubscribeURL="https://evil.example.com/confirm", Token="abc",
    )
    assert post_sns(client, elsewhere).status_code == 400
    assert server.confirmations == before + 1


def test_postmark_webhook_needs_its_token(app, client):
    with app.app_context():
        add_subscriber("gone@example.com")
        add_subscriber("spam@example.com")
    bounce = {"RecordType": "Bounce", "Type": "HardBounce", "Email": "gone@example.com"}
    complaint = {"RecordType": "SpamComplaint", "Email": "spam@example.com"}
    for headers in ({}, {"X-Postmark-Webhook-Token": "wrong"}):
        response = client.post("/api/v1/webhooks/postmark", json=bounce, headers=headers)
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "bad_token"
    wrong_basic = "Basic " + base64.b64encode(b"postmark:nope").decode()
    response = client.post(
        "/api/v1/webhooks/postmark", json=complaint, headers={"Authorization": wrong_basic}
    )
    assert response.status_code == 401
    with app.app_context():
        assert set(statuses().values()) == {"confirmed"}
        assert db.session.scalar(select(func.count(InboundMessage.id))) == 0
    token_header = {"X-Postmark-Webhook-Token": POSTMARK_TOKEN}
    ok = client.post("/api/v1/webhooks/postmark", json=bounce, headers=token_header)
    assert ok.status_code == 200
    basic = "Basic " + base64.b64encode(f"postmark:{POSTMARK_TOKEN}".encode()).decode()
    assert client.post(
        "/api/v1/webhooks/postmark", json=complaint, headers={"Authorization": basic}
    ).status_code == 200
    with app.app_context():
        assert statuses() == {"gone@example.com": "bounced", "spam@example.com": "unsubscribed"}


def test_webhooks_refuse_everything_when_not_configured(make_app):
    app = make_app(SES_TOPIC_ARNS=[], POSTMARK_WEBHOOK_TOKEN="")
    client = app.test_client()
    assert client.post("/api/v1/webhooks/ses", json={"Type": "Notification"}).status_code == 403
    assert client.post(
        "/api/v1/webhooks/postmark", json={}, headers={"X-Postmark-Webhook-Token": ""}
    ).status_code == 403
