"""Hostile requests for the "never a 500" sweep: every route of the url_map, filled with bad
path values, bad query strings and bad bodies, sent as each kind of caller.

The lists here are data, not logic: a new hostile case is one more line.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from flask_login.utils import _create_identifier
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import func, select
from werkzeug.routing import Rule
from werkzeug.test import TestResponse

from newsletter.extensions import db

# ---------------------------------------------------------------------------------------------
# Values


HUGE_TEXT = "a" * 200_000  # under MAX_CONTENT_LENGTH: reaches the view
TOO_BIG_TEXT = "b" * 300_000  # over MAX_CONTENT_LENGTH: must be a clean 413
LONG_TOKEN = "A" * 5000

# Values put into every string field a view might read.
HOSTILE_VALUES: dict[str, Any] = {
    "nested object": {"a": {"b": [1, {"c": None}]}},
    "list": ["x@example.org", "y"],
    "empty list": [],
    "number": 12345,
    "float": 1e308,
    "negative": -1,
    "huge int": 10**30,
    "bool": True,
    "null": None,
    "empty": "",
    "spaces": "   ",
    "nul byte": "abc\x00def",
    "crlf": "x@example.org\r\nBcc: victim@example.org",
    "lone surrogate": "\ud800x",
    "rtl override": "\u202egro.elpmaxe@x",
    "huge": "h" * 5000,  # in every field at once: ~190 kB, under MAX_CONTENT_LENGTH
    "html": "<script>alert(1)</script><img src=x onerror=alert(1)>",
    "sql": "' OR 1=1; DROP TABLE subscribers; --",
    "path": "../../../../etc/passwd",
    "format string": "%s%s%n{0}{__class__}",
}

# Every field name a view of this app reads from a body (forms and JSON alike).
FIELD_NAMES = (
    "email", "password", "language", "name", "code", "token", "next", "title", "summary",
    "body", "url", "image_url", "video_url", "published_at", "send_at", "subject", "cron",
    "every", "at", "weekday", "timezone", "status", "new_email", "current_password",
    "new_password", "action", "step", "csv_text", "default_language", "dateline", "subscribe",
    "website", "page", "List-Unsubscribe", "date", "time", "kind",
)  # fmt: skip

# Plausible-looking values that are wrong: dates, languages, statuses, crons, addresses.
BAD_DATES = (
    "2024-13-45T99:99",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "10000-01-01T00:00:00",
    "2024-02-30",
    "now",
    "-1",
    "1e20",
    "2024-01-01T00:00:00+99:00",
    "2024-01-01T00:00:00.123456789123Z",
    "\u0662\u0660\u0662\u0664-01-01",  # Arabic-Indic digits: fromisoformat's edge
)
BAD_WORDS = ("xx", "FR ", "../fr", "bogus", "\x00", "fr\r\n", "é" * 300)
BAD_CRONS = ("* * * * * * *", "99 99 99 99 99", "0 8 * * mon/0", "", "@reboot", "0 8 31 2 *")
BAD_TIMEZONES = ("Mars/Olympus", "../../etc/localtime", "UTC\x00", "+99:00", "")
BAD_EMAILS = (
    "not-an-address",
    "a@b",
    "x@example.org\x00",
    "x@" + "a" * 300 + ".org",
    "\ud800@example.org",
    "x@[127.0.0.1]",
    "x@xn--.org",
)


# A subscriber CSV with every kind of bad line: edge dates, control characters, formulas,
# ragged rows, a second header, quotes left open.
HOSTILE_CSV = "\ufeffemail,name,language,consent_at,consent_ip,consent_page\n" + "\n".join(
    [
        *(
            f"d{i}@example.org,D,fr,{value},1.2.3.4,https://x.org/"
            for i, value in enumerate(BAD_DATES)
        ),
        "nul@example.org,\x00,fr,,,",
        "=cmd|' /C calc'!A0,@SUM(1),xx,,999.999.999.999,javascript:alert(1)",
        "ragged@example.org,a,b,c,d,e,f,g,h",
        "email,name,language,consent_at,consent_ip,consent_page",
        '"open@example.org,"unterminated',
        "",
        ",,,,,",
        "long@example.org," + "n" * 5000 + ",fr,,," + "p" * 5000,
    ]
)


# "Billion laughs", kept small: a feed parser that expands entities must not fall over.
FEED_BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa">'
    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">'
    b'<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
    b"<rss><channel><title>&d;</title><item><title>&d;</title><guid>&d;</guid>"
    b"<pubDate>Mon, 01 Jan 0001 00:00:00 +1400</pubDate></item></channel></rss>"
)


def json_bodies() -> Iterator[tuple[str, dict[str, Any]]]:
    """(label, keyword arguments for ``client.open``) of JSON bodies, hostile in shape."""
    raw = "application/json"
    yield "json: malformed", {"data": '{"email": ', "content_type": raw}
    yield "json: empty body", {"data": "", "content_type": raw}
    yield "json: array", {"json": ["email", "x@example.org"]}
    yield "json: string", {"json": "x@example.org"}
    yield "json: number", {"json": 42}
    yield "json: null", {"data": "null", "content_type": raw}
    yield "json: true", {"json": True}
    yield "json: empty object", {"json": {}}
    yield "json: NaN", {"data": '{"page": NaN, "email": Infinity}', "content_type": raw}
    yield "json: deep nesting", {"data": "[" * 50_000 + "]" * 50_000, "content_type": raw}
    yield "json: duplicate keys", {"data": '{"email": 1, "email": "x"}', "content_type": raw}
    yield "json: invalid utf-8", {"data": b'{"email": "\xff\xfe@x.org"}', "content_type": raw}
    yield (
        "json: utf-16 charset",
        {
            "data": '{"email": "x@example.org"}'.encode("utf-16"),
            "content_type": "application/json; charset=utf-16",
        },
    )
    yield (
        "json: bogus charset",
        {
            "data": '{"email": "x@example.org"}',
            "content_type": "application/json; charset=bogus-42",
        },
    )
    yield (
        "json: vendor type",
        {
            "data": '{"email": "x@example.org"}',
            "content_type": "application/vnd.api+json",
        },
    )
    yield "json: too big", {"json": {"email": TOO_BIG_TEXT}}
    yield "json: one huge password", {"json": {"email": "x@example.org", "password": HUGE_TEXT}}
    yield "json: one huge body", {"json": {"title": "T", "language": "fr", "body": HUGE_TEXT}}
    for label, value in HOSTILE_VALUES.items():
        yield f"json: every field {label}", {"json": dict.fromkeys(FIELD_NAMES, value)}
    for value in BAD_DATES:
        yield (
            f"json: date {value!r}",
            {"json": {"send_at": value, "published_at": value, "language": "fr", "title": "T"}},
        )
    for value in BAD_WORDS:
        yield (
            f"json: word {value!r}",
            {
                "json": {
                    name: value for name in ("language", "status", "every", "weekday", "action")
                }
            },
        )
    for value in BAD_CRONS:
        yield f"json: cron {value!r}", {"json": {"language": "fr", "cron": value}}
    for value in BAD_TIMEZONES:
        yield (
            f"json: timezone {value!r}",
            {"json": {"language": "fr", "every": "day", "at": "08:00", "timezone": value}},
        )
    for value in ("25:00", "8", "08:00:00:00", "-1:00", "08:60"):
        yield f"json: at {value!r}", {"json": {"language": "fr", "every": "week", "at": value}}
    for value in BAD_EMAILS:
        yield (
            f"json: email {value!r}",
            {"json": {"email": value, "new_email": value, "password": "x", "code": "123456"}},
        )
    yield "json: code as number", {"json": {"email": "x@example.org", "code": 123456}}
    yield "json: unknown fields only", {"json": {"zzz": 1, "__proto__": {"admin": True}}}


def form_bodies() -> Iterator[tuple[str, dict[str, Any]]]:
    """(label, keyword arguments for ``client.open``) of non-JSON bodies."""
    form = "application/x-www-form-urlencoded"
    yield "no body", {}
    yield "form: empty", {"data": {}}
    yield "form: invalid utf-8", {"data": b"email=%ff%fe%00&name=\xff\xfe", "content_type": form}
    yield "form: bad percent escapes", {"data": "email=%zz%&&=&==%", "content_type": form}
    yield "form: repeated fields", {"data": "email=a&email=b&language=fr&language=en"}
    yield (
        "form: nul and crlf",
        {"data": {name: "x\x00\r\nBcc: y@example.org" for name in FIELD_NAMES}},
    )
    yield "form: huge fields", {"data": dict.fromkeys(FIELD_NAMES, "z" * 20_000)}
    yield "form: too big", {"data": {"email": TOO_BIG_TEXT}}
    yield (
        "form: bad dates",
        {
            "data": {
                "language": "fr",
                "title": "T",
                "published_at": BAD_DATES[1],
                "send_at": BAD_DATES[2],
                "date": "2024-02-30",
                "time": "25:61",
                "timezone": "Mars/Olympus",
                "every": "fortnight",
                "at": "99:99",
                "cron": "99 99 99 99 99",
            }
        },
    )
    for value in BAD_DATES:
        yield (
            f"form: date {value!r}",
            {"data": {"send_at": value, "published_at": value, "date": value, "language": "fr"}},
        )
    yield "form: bad words", {"data": dict.fromkeys(FIELD_NAMES, "../../xx")}
    for step in ("preview", "import"):
        yield f"form: hostile csv ({step})", {"data": {"csv_text": HOSTILE_CSV, "step": step}}
        yield (
            f"multipart: hostile csv file ({step})",
            {
                "data": {"file": (HOSTILE_CSV.encode("utf-16"), "list.csv"), "step": step},
                "content_type": "multipart/form-data",
            },
        )
    yield (
        "multipart: csv file not text",
        {
            "data": {"file": (b"\xff\xfe\x00\x00\xc3\x28" * 100, "list.csv")},
            "content_type": "multipart/form-data",
        },
    )
    yield "text/plain", {"data": "email=x@example.org", "content_type": "text/plain"}
    yield (
        "xml with entities",
        {
            "data": '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
            "<a>&e;</a>",
            "content_type": "application/xml",
        },
    )
    yield (
        "octet-stream",
        {"data": b"\x00\x01\xff" * 100, "content_type": "application/octet-stream"},
    )
    yield (
        "multipart with files",
        {
            "data": {
                "email": "x@example.org",
                "file": (b"email\n\x00\xff\xfe,=cmd|' /C calc'!A0\n", "../../x.csv"),
                "csv_text": 'email,name\n=HYPERLINK("x"),\x00\n',
            },
            "content_type": "multipart/form-data",
        },
    )
    yield (
        "multipart: file as every field",
        {
            "data": {name: (b"\xff\xfe\x00", "f.bin") for name in FIELD_NAMES},
            "content_type": "multipart/form-data",
        },
    )
    yield (
        "multipart without boundary",
        {
            "data": "--x\r\n\r\n",
            "content_type": "multipart/form-data",
        },
    )
    yield (
        "multipart with broken boundary",
        {
            "data": '--zz\r\nContent-Disposition: form-data; name="email"\r\n\r\nx',
            "content_type": "multipart/form-data; boundary=zz",
        },
    )
    yield "content-type garbage", {"data": "x", "content_type": ";;;=\x7f"}


def query_strings() -> Iterator[str]:
    """Hostile query strings, for every route (most pages ignore them; none may fail)."""
    yield ""
    yield "?page=abc"
    yield "?page=-5"
    yield "?page=0"
    yield "?page=" + "1" + "0" * 30
    yield "?page=1e3"
    yield "?page=%00"
    yield "?page=1&page=2&page=x"
    yield "?page[]=1"
    yield "?per_page=0"
    yield "?per_page=" + "9" * 25
    yield "?per_page=-1"
    yield "?status=bogus&language=xx&format=pdf"
    yield "?status=%00&language=%ff&format=%0d%0a"
    yield "?q=%00%ff%fe&q=" + "q" * 5000
    yield "?next=//evil.example/&next=https://evil.example"
    yield "?next=%0d%0aSet-Cookie:%20x=1"
    yield "?token=" + LONG_TOKEN + "&email=%ff"
    yield "?email=x@example.org%00&token=%00"
    yield "?language=../../etc&lang=%ff"
    yield "?since=2024-13-45&until=-1&days=99999999999999999999"
    yield "?" + "&".join(f"k{i}=v" for i in range(2000))


# Headers a client controls, each set sent to every route.
HOSTILE_HEADERS: dict[str, dict[str, str]] = {
    "huge bearer": {"Authorization": "Bearer " + "x" * 10_000},
    "empty bearer": {"Authorization": "Bearer \t"},
    "basic auth": {"Authorization": "Basic Zm9vOmJhcg=="},
    "latin-1 bearer": {"Authorization": "Bearer nlt_\xe9\xff"},
    "accept-language garbage": {"Accept-Language": "xx-ZZ;q=abc, *;q=2, ;;;, " + "fr," * 500},
    "accept garbage": {"Accept": "application/json;q=abc, text/*;q=-1, */*;q=99"},
    "origin null": {"Origin": "null", "Referer": "javascript:alert(1)"},
    "forged session cookie": {"Cookie": "session=" + "A" * 4000 + "; lang=../../xx"},
    "forwarded junk": {"X-Forwarded-For": "999.1.1.1, ::::, %00", "X-Forwarded-Proto": "gopher"},
}

# Values for each kind of path parameter; the first is the "ordinary" one.
INT_PATH_VALUES = (
    "0",
    "99999999999999999999",
    "9223372036854775807",
    "9223372036854775808",
    "-1",
    "1e3",
    "abc",
    "%00",
)
STRING_PATH_VALUES = (
    "%00",
    "..",
    "..%2F..%2Fetc%2Fpasswd",
    LONG_TOKEN,
    "%FF%FE",
    "%0D%0ASet-Cookie:%20x=y",
    "%E2%80%AE",
    "%20",
    "eyJzIjoxLCJmIjoiYSJ9.ZZZZZZ.forged",
    "a.b.c.d",
    "%ud800",
)
PATH_PATH_VALUES = ("../../../etc/passwd", "%00", "..%2f..%2fsecret", "x" * 5000)

# ---------------------------------------------------------------------------------------------
# Routes


@dataclass
class Target:
    """One route, with the ordinary value of each of its path parameters."""

    rule: Rule
    methods: list[str]
    ordinary: dict[str, str] = field(default_factory=dict)

    def url(self, **overrides: str) -> str:
        values = {**self.ordinary, **overrides}
        return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: values[m.group(1)], self.rule.rule)

    def ordinary_urls(self) -> Iterator[str]:
        """The URL with ordinary values, once per choice of an ``any(...)`` parameter."""
        choices = [
            (name, sorted(converter.items))
            for name, converter in self.rule._converters.items()
            if type(converter).__name__ == "AnyConverter"
        ]
        if not choices:
            yield self.url()
            return
        for name, items in choices:
            for item in items:
                yield self.url(**{name: item})

    def hostile_urls(self) -> Iterator[str]:
        for name, converter in self.rule._converters.items():
            kind = type(converter).__name__
            if kind == "IntegerConverter":
                values = INT_PATH_VALUES
            elif kind == "PathConverter":
                values = PATH_PATH_VALUES
            elif kind == "AnyConverter":
                values = ("bogus", "%00", "PAUSE")
            else:
                values = STRING_PATH_VALUES
            for value in values:
                yield self.url(**{name: value})


def targets(app: Flask, ordinary: dict[str, str]) -> list[Target]:
    """Every rule of the url_map with the methods it answers (HEAD and OPTIONS added).

    ``ordinary`` gives path values by parameter name, or by ``endpoint/name`` for one route.
    """
    found = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        values = {}
        for name, converter in rule._converters.items():
            if type(converter).__name__ == "AnyConverter":
                values[name] = sorted(converter.items)[0]
            else:
                values[name] = ordinary.get(f"{rule.endpoint}/{name}", ordinary.get(name, "x"))
        methods = sorted(rule.methods or ())
        found.append(Target(rule=rule, methods=methods, ordinary=values))
    return found


# ---------------------------------------------------------------------------------------------
# Callers


CSRF_RAW_TOKEN = "hostile-sweep-csrf"  # what Flask-WTF keeps in the session


@dataclass
class Caller:
    """Who sends the requests: anonymous, a session, or a bearer token."""

    name: str
    user_session: str | None = None  # "id:session_version"
    token: str | None = None

    def prepare(self, app: Flask, client: FlaskClient) -> None:
        """Put the session back as it was (hostile requests may log it out or clear it)."""
        with app.test_request_context(environ_base=client.environ_base):
            identifier = _create_identifier()  # what Flask-Login's strong protection checks
        with client.session_transaction() as session:
            session.clear()
            session["csrf_token"] = CSRF_RAW_TOKEN
            if self.user_session is not None:
                session["_user_id"] = self.user_session
                session["_fresh"] = True
                session["_id"] = identifier

    def headers(self, app: Flask, *, csrf: bool) -> dict[str, str]:
        """The bearer token, and the CSRF token a page of this session would carry."""
        headers = {}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        if csrf:
            signer = URLSafeTimedSerializer(app.secret_key, salt="wtf-csrf-token")
            headers["X-CSRFToken"] = signer.dumps(CSRF_RAW_TOKEN)
        return headers


# ---------------------------------------------------------------------------------------------
# Checking answers


def is_json_body(kwargs: dict[str, Any]) -> bool:
    content_type = kwargs.get("content_type", "application/json" if "json" in kwargs else "")
    mimetype = content_type.split(";")[0].strip().lower()
    return mimetype == "application/json" or mimetype.endswith("+json")


def contract_error_problem(response: TestResponse) -> str | None:
    """What is wrong with a 4xx JSON answer's shape, or None when it is the contract's."""
    body = response.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return f"not the error shape: {response.get_data()[:200]!r}"
    return error_shape_problem(body)


def error_shape_problem(body: object) -> str | None:
    """What is wrong with a decoded JSON error body, or None when it is the contract's
    ``{"error": {"code", "message", "fields"}}`` (extra keys, such as ``rules``, allowed)."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return f"not the error shape: {str(body)[:200]}"
    error = body["error"]
    if not isinstance(error.get("code"), str) or not isinstance(error.get("message"), str):
        return f"code/message missing: {error!r}"
    fields = error.get("fields")
    if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
        return f"fields must map names to text: {error!r}"
    return None


def row_counts() -> tuple[int, ...]:
    """How many rows each table holds: a 4xx answer must not change any of them.

    Except ``login_throttles``: a wrong password (even a huge one) is a guess, and counting
    guesses on a 400 is the throttle's whole point (issue 11).
    """
    skipped = {"scheduler_leases", "login_throttles"}
    tables = [table for table in db.metadata.sorted_tables if table.name not in skipped]
    query = select(*[select(func.count()).select_from(t).scalar_subquery() for t in tables])
    return tuple(db.session.execute(query).one())


@dataclass
class Finding:
    caller: str
    method: str
    url: str
    body: str
    problem: str

    def __str__(self) -> str:
        return f"[{self.caller}] {self.method} {self.url[:120]} ({self.body}): {self.problem}"


@dataclass
class Sweep:
    """Sends requests and collects every answer that breaks the contract.

    ``with_csrf_token`` sends the session's valid CSRF token (as ``X-CSRFToken``), so that
    bodies reach the views that check it; without it, the CSRF refusals are what is swept.
    """

    app: Flask
    client: FlaskClient
    caller: Caller
    with_csrf_token: bool = False
    findings: list[Finding] = field(default_factory=list)
    sent: int = 0
    _counts: tuple[int, ...] | None = None  # row counts after the last answer, when known
    _session_dirty: bool = True

    def send(self, method: str, url: str, label: str, kwargs: dict[str, Any]) -> None:
        if self._session_dirty:
            self.caller.prepare(self.app, self.client)
        kwargs = {**kwargs}
        headers = {
            **self.caller.headers(self.app, csrf=self.with_csrf_token),
            **kwargs.pop("headers", {}),
        }
        if self._counts is None:
            with self.app.app_context():
                self._counts = row_counts()
        before = self._counts
        if isinstance(kwargs.get("data"), dict):
            # Files are given as (bytes, name): the client closes the file objects it sends.
            kwargs["data"] = {
                name: (io.BytesIO(value[0]), value[1]) if isinstance(value, tuple) else value
                for name, value in kwargs["data"].items()
            }
        response = self.client.open(url, method=method, headers=headers, **kwargs)
        self.sent += 1
        # A new session cookie means a login, a logout or a cleared session: set it back.
        self._session_dirty = "Set-Cookie" in response.headers
        problem = None
        if response.status_code >= 500:
            problem = f"status {response.status_code}"
        elif 400 <= response.status_code < 500 and method != "HEAD":  # HEAD has no body
            if url.startswith("/api/") or is_json_body(kwargs):
                problem = contract_error_problem(response)
            if problem is None:
                with self.app.app_context():
                    self._counts = row_counts()
                if self._counts != before:
                    problem = f"{response.status_code} but rows changed {before} -> {self._counts}"
        else:
            self._counts = None  # a success may write: count again before the next request
        response.close()
        if problem:
            self.findings.append(Finding(self.caller.name, method, url, label, problem))

    def report(self) -> str:
        """Findings grouped by route and problem, with the bodies that caused each."""
        groups: dict[tuple[str, str, str], list[str]] = {}
        for finding in self.findings:
            key = (finding.method, finding.url[:100], finding.problem[:90])
            groups.setdefault(key, []).append(finding.body)
        lines = [
            f"[{self.caller.name}] {method} {url}: {problem}\n      <- {', '.join(labels)[:400]}"
            for (method, url, problem), labels in groups.items()
        ]
        return "\n".join(lines)
