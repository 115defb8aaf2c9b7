"""Generated bodies, headers and parameters against every public endpoint.

Requests are authenticated correctly where the endpoint needs it (so the generated input gets
past the door and into parsing, the IVR, intake and storage) and sometimes not. Whatever comes
in, the answer is never a 5xx, a refused request (4xx) stores nothing, TwiML answers validate
against Twilio's schema, and the store never holds half of anything (checked after each test).
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from flask import Flask
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from channels.voice.signature import SIGNATURE_HEADER, SIGNATURE_SETTINGS_HEADER, sign
from tests.abuse.conftest import POSTMARK, SENDGRID, Guard, basic, mailgun_signature
from tests.reliability.harness import (
    ACME_PIN,
    ADMIN,
    MIME_TOKEN,
    PUBLIC,
    TWILIO_TOKEN,
    US,
    gather_action,
    portal_token,
    voice,
    voice_params,
)

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

INJECTIONS = [
    "'; DROP TABLE contacts; --",
    '" OR 1=1 --',
    "1; SELECT pg_sleep(5)",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "{{7*7}}${7*7}<%= 7*7 %>",
    "\r\nX-Injected: yes",
    "../../../../etc/passwd",
    "\x00\x01\x02",
    "\u202e\ufeff\U0001f4a9",
    "%00%0d%0a",
    "A" * 5000,
]
TEXT = st.one_of(
    st.text(max_size=200),
    st.sampled_from(INJECTIONS),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.just(""),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
HEADER_VALUE = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=120)


@st.composite
def mutated(draw: st.DrawFn, valid: dict[str, Any]) -> dict[str, Any]:
    """A valid document with up to three fields replaced by anything, dropped, or added."""
    document = dict(valid)
    for _ in range(draw(st.integers(0, 3))):
        operation = draw(st.sampled_from(["replace", "replace", "replace", "drop", "add"]))
        name = draw(st.sampled_from(sorted(valid)))
        if operation == "replace":
            document[name] = draw(st.one_of(TEXT, JSON))
        elif operation == "drop":
            document.pop(name, None)
        else:
            document[draw(st.text(max_size=12))] = draw(JSON)
    return document


# -- voice -------------------------------------------------------------------------------------

VOICE_PATHS = [
    "/voice/incoming",
    "/voice/fallback",
    "/voice/pin",
    "/voice/severity",
    "/voice/topic",
    "/voice/wait",
    "/voice/queue-result",
    "/voice/status",
]
TWILIO_FIELDS = [
    "CallSid",
    "AccountSid",
    "From",
    "To",
    "Called",
    "Caller",
    "CallStatus",
    "Direction",
    "Digits",
    "QueueResult",
    "QueueTime",
    "QueuePosition",
    "AvgQueueTime",
    "CallDuration",
    "SpeechResult",
]
# Headers a proxy or a client might add; none may change what a signed request is.
EXTRA_HEADERS = [
    "I-Twilio-Idempotency-Token",
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
    "X-Forwarded-Port",
    "X-Forwarded-Prefix",
    "Accept",
    "Accept-Language",
    "Cookie",
    "User-Agent",
]
CALL_SIDS = st.one_of(
    st.sampled_from([f"CAabuse{n:02d}" for n in range(6)]),  # calls that do exist
    TEXT,
)


@st.composite
def voice_requests(draw: st.DrawFn) -> tuple[str, dict[str, str], dict[str, str]]:
    path = draw(st.sampled_from(VOICE_PATHS))
    query = draw(
        st.dictionaries(
            st.sampled_from(["step", "lang", "x"]),
            st.one_of(st.integers(-3, 10**12).map(str), TEXT),
            max_size=3,
        )
    )
    target = path + (f"?{urlencode(query)}" if query else "")
    params = {
        "CallSid": draw(CALL_SIDS),
        "From": draw(st.sampled_from(["+13035559000", "", "anonymous", "+1" + "9" * 40])),
        "To": draw(st.sampled_from([US, "+448000668529", "", "not a number"])),
    }
    params.update(
        draw(
            st.dictionaries(
                st.one_of(st.sampled_from(TWILIO_FIELDS), st.text(min_size=1, max_size=15)),
                TEXT,
                max_size=6,
            )
        )
    )
    signing = draw(st.sampled_from(["valid", "valid", "valid", "none", "garbage", "shared-key"]))
    headers = draw(st.dictionaries(st.sampled_from(EXTRA_HEADERS), HEADER_VALUE, max_size=3))
    if signing == "valid":
        headers[SIGNATURE_HEADER] = sign(TWILIO_TOKEN, PUBLIC + target, params)
    elif signing == "garbage":
        headers[SIGNATURE_HEADER] = draw(HEADER_VALUE)
    elif signing == "shared-key":
        headers[SIGNATURE_SETTINGS_HEADER] = draw(HEADER_VALUE)
        headers[SIGNATURE_HEADER] = sign(TWILIO_TOKEN, PUBLIC + target, params)
    return target, params, headers


@pytest.fixture(scope="session")
def calls_in_progress(abuse_app: Flask) -> None:
    """Answer the calls the generated requests may continue (at PIN, severity and topic)."""
    client = abuse_app.test_client()
    for number in range(6):
        params = voice_params(f"CAabuse{number:02d}", "+13035559000")
        step = voice("/voice/incoming", params)
        answer = client.open(step.path, **step.client_kwargs())
        for digits in (ACME_PIN, "1")[: number % 3]:
            step = voice(gather_action(answer.data), {**params, "Digits": digits})
            answer = client.open(step.path, **step.client_kwargs())


@FUZZ
@given(webhook=voice_requests())
def test_voice_webhooks(
    abuse_app: Flask,
    guard: Guard,
    calls_in_progress: None,
    webhook: tuple[str, dict[str, str], dict[str, str]],
) -> None:
    client = abuse_app.test_client()
    target, params, headers = webhook
    before = guard.counts()
    response = client.post(target, data=params, headers=headers, base_url=PUBLIC)
    guard.check(response, before)
    event(f"HTTP {response.status_code}")
    if SIGNATURE_HEADER not in headers:
        assert response.status_code == 403


# -- email -------------------------------------------------------------------------------------

MIME_HEADERS = ["From", "To", "Subject", "Message-ID", "In-Reply-To", "References", "Date"]


@st.composite
def raw_messages(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=2000))
    lines = [
        f"{name}: {draw(TEXT)}".replace("\r", " ").replace("\n", " ")
        for name in draw(st.lists(st.sampled_from(MIME_HEADERS), max_size=7))
    ]
    return ("\r\n".join(lines) + "\r\n\r\n" + draw(TEXT)).encode("utf-8", "surrogatepass")


@FUZZ
@given(
    body=raw_messages(),
    content_type=st.sampled_from(
        ["message/rfc822", "text/plain", "application/octet-stream", "", "multipart/form-data"]
    ),
    authorization=st.sampled_from(
        [
            f"Bearer {MIME_TOKEN}",
            f"Bearer {MIME_TOKEN}",
            "Bearer wrong",
            "",
            "Basic Zm9vOmJhcg==",
        ]
    ),
)
def test_raw_mime_endpoint(
    abuse_app: Flask, guard: Guard, body: bytes, content_type: str, authorization: str
) -> None:
    client = abuse_app.test_client()
    before = guard.counts()
    headers = {"Authorization": authorization} if authorization else {}
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post("/email/inbound/mime", data=body, headers=headers)
    guard.check(response, before)
    event(f"HTTP {response.status_code}")


def postmark_document(message_id: str) -> dict[str, Any]:
    return {
        "From": ADMIN,
        "FromFull": {"Email": ADMIN, "Name": "Alice", "MailboxHash": ""},
        "To": "support@router.example",
        "ToFull": [{"Email": "support@router.example", "Name": "", "MailboxHash": ""}],
        "Subject": "SSO login fails with SAML error",
        "MessageID": message_id,
        "Date": "Fri, 27 Nov 2026 15:00:00 +0000",
        "TextBody": "Since yesterday SAML SSO fails for all users.",
        "HtmlBody": "<p>Since yesterday SAML SSO fails for all users.</p>",
        "Headers": [{"Name": "Message-ID", "Value": f"<{message_id}@acme.example>"}],
        "Attachments": [],
    }


@FUZZ
@given(
    payload=st.one_of(JSON, st.uuids().flatmap(lambda u: mutated(postmark_document(u.hex)))),
    good_password=st.sampled_from([True, True, True, False]),
)
def test_postmark_endpoint(
    abuse_app: Flask, guard: Guard, payload: Any, good_password: bool
) -> None:
    client = abuse_app.test_client()
    before = guard.counts()
    password = POSTMARK[1] if good_password else "wrong"
    response = client.post(
        "/email/inbound/postmark",
        data=json.dumps(payload),
        headers={
            "Authorization": basic(POSTMARK[0], password),
            "Content-Type": "application/json",
        },
    )
    guard.check(response, before)
    event(f"HTTP {response.status_code}")


def mailgun_fields(message_id: str) -> dict[str, Any]:
    headers = [["Message-Id", message_id], ["From", ADMIN], ["Subject", "AD sync stopped"]]
    return {
        "recipient": "support@router.example",
        "sender": ADMIN,
        "from": f"Alice <{ADMIN}>",
        "subject": "[Sev1] AD sync stopped",
        "body-plain": "AD sync stopped syncing users this morning.",
        "message-headers": json.dumps(headers),
        "Message-Id": message_id,
    }


@FUZZ
@given(
    fields=st.one_of(
        st.dictionaries(TEXT, TEXT, max_size=6),
        st.uuids().flatmap(lambda u: mutated(mailgun_fields(f"<{u.hex}@acme.example>"))),
    ),
    signed=st.sampled_from(["fresh", "fresh", "fresh", "stale", "none"]),
)
def test_mailgun_endpoint(
    abuse_app: Flask, guard: Guard, fields: dict[str, Any], signed: str
) -> None:
    client = abuse_app.test_client()
    before = guard.counts()
    form = {
        name: value if isinstance(value, str) else json.dumps(value)
        for name, value in fields.items()
    }
    if signed == "fresh":
        form.update(mailgun_signature())
    elif signed == "stale":
        form.update(mailgun_signature(timestamp="1000000000"))
    response = client.post("/email/inbound/mailgun", data=form)
    guard.check(response, before)
    event(f"HTTP {response.status_code}")


def sendgrid_fields(message_id: str) -> dict[str, Any]:
    return {
        "headers": f"Message-ID: {message_id}\nFrom: {ADMIN}\nSubject: Agent down\n",
        "from": f"Alice <{ADMIN}>",
        "to": "support@router.example",
        "subject": "Agent down on every Mac",
        "text": "The agent stopped on all our Macs after the update.",
        "envelope": json.dumps({"to": ["support@router.example"], "from": ADMIN}),
        "charsets": json.dumps({"subject": "UTF-8", "text": "UTF-8", "from": "UTF-8"}),
        "SPF": "pass",
        "dkim": "{@acme.example : pass}",
    }


@FUZZ
@given(
    fields=st.one_of(
        st.dictionaries(TEXT, TEXT, max_size=6),
        st.uuids().flatmap(lambda u: mutated(sendgrid_fields(f"<{u.hex}@acme.example>"))),
    ),
    multipart=st.booleans(),
    good_password=st.sampled_from([True, True, True, False]),
)
def test_sendgrid_endpoint(
    abuse_app: Flask, guard: Guard, fields: dict[str, Any], multipart: bool, good_password: bool
) -> None:
    client = abuse_app.test_client()
    before = guard.counts()
    password = SENDGRID[1] if good_password else "wrong"
    form = {
        name: value if isinstance(value, str) else json.dumps(value)
        for name, value in fields.items()
    }
    response = client.post(
        "/email/inbound/sendgrid",
        data=form,
        content_type="multipart/form-data" if multipart else "application/x-www-form-urlencoded",
        headers={"Authorization": basic(SENDGRID[0], password)},
    )
    guard.check(response, before)
    event(f"HTTP {response.status_code}")


# -- chat and the portal -----------------------------------------------------------------------

CHAT_OPEN = {
    "topic": "windows",
    "subject": "Agent will not start",
    "severity": "S2",
    "message": "Help",
}
PORTAL_FORM = {
    "subject": "SSO broken",
    "description": "Nobody can log in since 08:00.",
    "severity": "S1",
    "category": "break-fix",
    "topic": "identity",
    "troubleshooting": "Restarted the IdP connector.",
    "recognised_at": "2026-11-27T08:00:00Z",
    "error_messages": ["invalid audience"],
    "resources": ["all users"],
    "attachments": ["screenshot.png"],
}


@st.composite
def chat_requests(draw: st.DrawFn, sessions: list[int]) -> tuple[str, str, bytes, dict[str, str]]:
    kind = draw(st.sampled_from(["open", "form", "message", "message", "handoff", "state"]))
    contact = draw(st.one_of(st.sampled_from(sessions), st.integers(-5, 2**40)))
    if kind == "open":
        method, path, body = (
            "POST",
            "/chat/sessions",
            draw(st.one_of(JSON, mutated(CHAT_OPEN), mutated(CHAT_OPEN))),
        )
    elif kind == "form":
        method, path, body = (
            "POST",
            "/portal/requests",
            draw(st.one_of(JSON, mutated(PORTAL_FORM), mutated(PORTAL_FORM))),
        )
    elif kind == "message":
        method, path, body = (
            "POST",
            f"/chat/sessions/{contact}/messages",
            draw(st.one_of(JSON, mutated({"text": "Any news?"}), mutated({"text": "Any news?"}))),
        )
    elif kind == "handoff":
        method, path, body = (
            "POST",
            f"/chat/sessions/{contact}/handoff",
            draw(st.one_of(JSON, mutated({"message": "Need a human"}))),
        )
    else:
        method, path, body = "GET", f"/chat/sessions/{contact}", None
    headers = draw(st.dictionaries(st.sampled_from(EXTRA_HEADERS), HEADER_VALUE, max_size=2))
    headers["Authorization"] = f"Bearer {portal_token()}"
    if draw(st.booleans()):
        headers["Idempotency-Key"] = draw(st.one_of(HEADER_VALUE, st.just(str(uuid.uuid4()))))
    content_type = draw(
        st.sampled_from(["application/json", "text/plain", "", "application/x-www-form-urlencoded"])
    )
    if content_type:
        headers["Content-Type"] = content_type
    encoded = b"" if body is None else json.dumps(body).encode()
    raw = draw(
        st.one_of(st.just(encoded), st.just(encoded), st.just(encoded), st.binary(max_size=200))
    )
    return method, path, raw, headers


@pytest.fixture(scope="session")
def chat_sessions(abuse_app: Flask) -> list[int]:
    """Open a few chat sessions (live, and a Standard admin's bot) the requests may address."""
    client = abuse_app.test_client()
    ids = []
    for admin, org in (("alice@acme.example", "acme"), ("bob@globex.example", "globex")):
        for _ in range(3):
            opened = client.post(
                "/chat/sessions",
                json=CHAT_OPEN,
                headers={"Authorization": f"Bearer {portal_token(admin, org)}"},
            )
            assert opened.status_code == 201, opened.data
            ids.append(opened.json["contact_id"])
    return ids


@FUZZ
@given(data=st.data())
def test_chat_and_portal(
    abuse_app: Flask, guard: Guard, chat_sessions: list[int], data: st.DataObject
) -> None:
    client = abuse_app.test_client()
    method, path, body, headers = data.draw(chat_requests(chat_sessions))
    before = guard.counts()
    response = client.open(path, method=method, data=body, headers=headers)
    guard.check(response, before, method)
    event(f"HTTP {response.status_code}")


# -- every other public route, without credentials ---------------------------------------------


@st.composite
def anonymous_requests(draw: st.DrawFn, app: Flask) -> tuple[str, str, bytes, dict[str, str]]:
    rules = sorted(
        (
            rule
            for rule in app.url_map.iter_rules()
            if not rule.rule.startswith(("/voice", "/email", "/chat", "/portal"))
        ),
        key=lambda rule: rule.rule,
    )
    rule = draw(st.sampled_from(rules))
    path = rule.rule
    for argument in rule.arguments:
        value = draw(st.one_of(st.integers(-5, 2**40).map(str), TEXT.filter(bool)))
        path = re.sub(rf"<[^<>]*\b{argument}>", quote(value, safe="").replace("\\", "%5C"), path)
    methods = [*sorted((rule.methods or set()) - {"OPTIONS"}), "PUT", "DELETE"]
    method = draw(st.sampled_from(methods))
    headers = {}
    auth = draw(
        st.sampled_from(
            ["", "Bearer ", "Bearer crt_1_forged", "Basic Zm9vOmJhcg==", f"Bearer {portal_token()}"]
        )
    )
    if auth:
        headers["Authorization"] = auth
    if draw(st.booleans()):
        headers["X-Forwarded-For"] = draw(HEADER_VALUE)
    body = draw(
        st.one_of(st.just(b""), JSON.map(lambda j: json.dumps(j).encode()), st.binary(max_size=100))
    )
    query = draw(st.dictionaries(TEXT, TEXT, max_size=3))
    if query:
        path += "?" + urlencode(query)
    return method, path, body, headers


@FUZZ
@given(data=st.data())
def test_anonymous_requests_to_every_other_route(
    abuse_app: Flask, guard: Guard, data: st.DataObject
) -> None:
    client = abuse_app.test_client()
    method, path, body, headers = data.draw(anonymous_requests(abuse_app))
    before = guard.counts()
    response = client.open(
        path, method=method, data=body, headers={**headers, "Content-Type": "application/json"}
    )
    guard.check(response, before, method)
    event(f"HTTP {response.status_code}")
    if path.startswith("/api/v1/") and not path.startswith("/api/v1/openapi.json"):
        # No staff credential was sent: nothing is served, nothing is changed.
        assert not 200 <= response.status_code < 300, (path, response.status_code)
    if path.startswith("/console/") and not path.startswith(("/console/login", "/console/static")):
        assert response.status_code in (302, 308, 400, 403, 404, 405, 413), (
            path,
            response.status_code,
        )


def test_ids_beyond_the_store_are_simply_not_found(abuse_app: Flask, guard: Guard) -> None:
    """Found by the chat fuzzing: a session id past 32 bits was a 500 on PostgreSQL."""
    client = abuse_app.test_client()
    headers = {"Authorization": f"Bearer {portal_token()}"}
    for contact_id in (2**31, 2**63, 10**30):
        before = guard.counts()
        for method, path, body in (
            ("GET", f"/chat/sessions/{contact_id}", None),
            ("POST", f"/chat/sessions/{contact_id}/messages", {"text": "hello"}),
            ("POST", f"/chat/sessions/{contact_id}/handoff", None),
        ):
            response = client.open(path, method=method, json=body, headers=headers)
            assert response.status_code == 404, (path, response.status_code)
        assert guard.counts() == before
