"""Twilio request authentication: signatures over the public URL, SHA-1 and SharedKey SHA-256."""

from __future__ import annotations

import logging

import pytest
from flask import Flask

from channels.voice import signature
from channels.voice.signature import (
    HMAC_SHA1,
    HMAC_SHA256,
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    check,
    public_url,
    sign,
    valid_signature,
)
from config import Settings, SettingsError
from tests.conftest import make_settings
from tests.functional.voice.conftest import PUBLIC, US, AppFactory, Call, Phone

TOKEN = "test-twilio-token-0123456789"
SHARED_ID = "webhooks_sharedkey_abc123"
SHARED_SECRET = "shared-key-secret-0123456789abcdef"
PARAMS = {"CallSid": "CA" + "1" * 32, "From": "+447700900123", "To": US, "Digits": "482913"}


def base_settings(**changes: object) -> Settings:
    values: dict[str, object] = {"public_base_url": None, **changes}
    return make_settings("sqlite://").with_overrides(**values)


@pytest.fixture
def bare_app() -> Flask:
    return Flask(__name__)


def url_seen(
    bare_app: Flask, settings: Settings, base_url: str, path: str, headers: dict[str, str]
) -> str:
    with bare_app.test_request_context(path, base_url=base_url, method="POST", headers=headers):
        from flask import request

        return public_url(request, settings)


@pytest.mark.parametrize(
    ("changes", "base_url", "headers", "expected"),
    [
        # PUBLIC_BASE_URL wins over whatever the request says.
        (
            {"public_base_url": "https://router.example.com/"},
            "http://10.0.0.5:8000",
            {"X-Forwarded-Host": "evil.example"},
            "https://router.example.com/voice/pin?step=2",
        ),
        # No proxy trusted: the URL as the app saw it, forwarded headers ignored (spoofable).
        (
            {},
            "http://router.example.com:8000",
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"},
            "http://router.example.com:8000/voice/pin?step=2",
        ),
        # One TLS-terminating proxy: scheme and host from it; its default port is left out.
        (
            {"trusted_proxy_count": 1},
            "http://10.0.0.5:8000",
            {
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "router.example.com",
                "X-Forwarded-Port": "443",
            },
            "https://router.example.com/voice/pin?step=2",
        ),
        # ... an explicit public port is kept.
        (
            {"trusted_proxy_count": 1},
            "http://10.0.0.5:8000",
            {
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "router.example.com",
                "X-Forwarded-Port": "8443",
            },
            "https://router.example.com:8443/voice/pin?step=2",
        ),
        (
            {"trusted_proxy_count": 1},
            "http://10.0.0.5:8000",
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "router.example.com:8443"},
            "https://router.example.com:8443/voice/pin?step=2",
        ),
        # Two proxies: the value the outer one appended (second from the right) is used; what
        # a client put in front of it is not.
        (
            {"trusted_proxy_count": 2},
            "http://10.0.0.5:8000",
            {
                "X-Forwarded-Proto": "http, https, http",
                "X-Forwarded-Host": "evil.example, router.example.com, lb.internal",
            },
            "https://router.example.com/voice/pin?step=2",
        ),
        # Fewer values than trusted proxies: the header did not come through them; ignored.
        (
            {"trusted_proxy_count": 2},
            "http://router.internal:8000",
            {"X-Forwarded-Host": "evil.example"},
            "http://router.internal:8000/voice/pin?step=2",
        ),
        # A path prefix the proxy strips.
        (
            {"trusted_proxy_count": 1},
            "http://10.0.0.5:8000",
            {
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "support.example.com",
                "X-Forwarded-Prefix": "/router/",
            },
            "https://support.example.com/router/voice/pin?step=2",
        ),
        # IPv6 literal host with a port.
        (
            {"trusted_proxy_count": 1},
            "http://10.0.0.5:8000",
            {
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "[2001:db8::1]",
                "X-Forwarded-Port": "8443",
            },
            "https://[2001:db8::1]:8443/voice/pin?step=2",
        ),
    ],
)
def test_public_url_reconstruction(
    bare_app: Flask,
    changes: dict[str, object],
    base_url: str,
    headers: dict[str, str],
    expected: str,
) -> None:
    settings = base_settings(**changes)
    assert url_seen(bare_app, settings, base_url, "/voice/pin?step=2", headers) == expected


def signed_request(
    bare_app: Flask,
    settings: Settings,
    signature_value: str,
    extra_headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> signature.Verdict:
    headers = {SIGNATURE_HEADER: signature_value, **(extra_headers or {})}
    with bare_app.test_request_context(
        "/voice/pin?step=2",
        base_url="https://router.example.com",
        method="POST",
        data=params or PARAMS,
        headers=headers,
    ):
        from flask import request

        return check(request, settings)


URL = "https://router.example.com/voice/pin?step=2"


def test_auth_token_sha1_signature(bare_app: Flask) -> None:
    settings = base_settings()
    assert signed_request(bare_app, settings, sign(TOKEN, URL, PARAMS)).ok
    # Twilio may sign the URL with the scheme's port spelled out; both forms are accepted.
    with_port = "https://router.example.com:443/voice/pin?step=2"
    assert signed_request(bare_app, settings, sign(TOKEN, with_port, PARAMS)).ok


def test_shared_key_sha256_signature(bare_app: Flask) -> None:
    settings = base_settings(
        twilio_shared_keys=f"old_key=older-secret-0123456789,{SHARED_ID}={SHARED_SECRET}"
    )
    header = {SIGNATURE_SETTINGS_HEADER: f"key={SHARED_ID},algorithm=HMAC_SHA256"}
    good = sign(SHARED_SECRET, URL, PARAMS, HMAC_SHA256)
    assert signed_request(bare_app, settings, good, header).ok
    verdict = signed_request(bare_app, settings, good, header)
    assert verdict.algorithm == HMAC_SHA256
    # The auth token's SHA-1 signature is not accepted once a SharedKey is announced.
    assert not signed_request(bare_app, settings, sign(TOKEN, URL, PARAMS), header).ok
    # A SHA-256 signature with the auth token is not accepted either.
    assert not signed_request(bare_app, settings, sign(TOKEN, URL, PARAMS, HMAC_SHA256), header).ok


def test_shared_key_refusals(bare_app: Flask) -> None:
    settings = base_settings(twilio_shared_keys=f"{SHARED_ID}={SHARED_SECRET}")
    good = sign(SHARED_SECRET, URL, PARAMS, HMAC_SHA256)
    unknown = {SIGNATURE_SETTINGS_HEADER: "key=someone_else,algorithm=HMAC_SHA256"}
    assert signed_request(bare_app, settings, good, unknown).reason.startswith(
        "signed with a SharedKey"
    )
    odd = {SIGNATURE_SETTINGS_HEADER: f"key={SHARED_ID},algorithm=HMAC_MD5"}
    assert signed_request(bare_app, settings, good, odd).reason == "unsupported signature algorithm"
    sha1 = {SIGNATURE_SETTINGS_HEADER: f"key={SHARED_ID}"}  # no algorithm: SHA-1
    assert signed_request(bare_app, settings, sign(SHARED_SECRET, URL, PARAMS), sha1).ok


def test_sha256_signatures_with_and_without_the_port() -> None:
    """SHA-256 (SharedKey) signatures are checked like SHA-1 ones, port variants included."""
    good = sign(SHARED_SECRET, URL, PARAMS, HMAC_SHA256)
    assert valid_signature(SHARED_SECRET, URL, PARAMS, good, HMAC_SHA256)
    with_port = sign(
        SHARED_SECRET, "https://router.example.com:443/voice/pin?step=2", PARAMS, HMAC_SHA256
    )
    assert valid_signature(SHARED_SECRET, URL, PARAMS, with_port, HMAC_SHA256)
    assert not valid_signature(SHARED_SECRET, URL, {**PARAMS, "Digits": "1"}, good, HMAC_SHA256)
    assert valid_signature(TOKEN, URL, PARAMS, sign(TOKEN, URL, PARAMS), HMAC_SHA1)


def test_shared_keys_setting_is_validated() -> None:
    settings = base_settings(twilio_shared_keys=f" {SHARED_ID} = {SHARED_SECRET} ,k2=abc=def")
    assert settings.twilio_shared_key_secrets() == {SHARED_ID: SHARED_SECRET, "k2": "abc=def"}
    with pytest.raises(SettingsError, match="TWILIO_SHARED_KEYS"):
        base_settings(twilio_shared_keys="no-separator")
    with pytest.raises(SettingsError, match="TWILIO_SHARED_KEYS"):
        base_settings(twilio_shared_keys="id=")


VOICE_URLS = [
    "/voice/incoming",
    "/voice/fallback",
    "/voice/status",
    "/voice/pin?step=1",
    "/voice/severity?step=2",
    "/voice/topic?step=3",
    "/voice/wait?lang=en-US",
    "/voice/queue-result",
]


@pytest.mark.parametrize("path", VOICE_URLS)
def test_unsigned_wrongly_signed_and_wrong_url_requests_get_403(
    phone: Phone, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    params = {**PARAMS, "CallStatus": "completed", "QueueResult": "bridged"}
    caplog.set_level(logging.INFO)
    unsigned = phone.client.post(PUBLIC + path, data=params)
    assert unsigned.status_code == 403
    assert unsigned.get_json()["error"] == "Forbidden"
    wrong_key = phone.post(
        path, params, signature=sign("not-the-token-0123456789", PUBLIC + path, params)
    )
    assert wrong_key.status_code == 403
    for other in (
        "http://router.example.com" + path,  # scheme
        "https://other.example.com" + path,  # host
        PUBLIC + path + ("&x=1" if "?" in path else "?x=1"),  # query
        PUBLIC + "/voice/other",  # path
    ):
        assert phone.post(path, params, sign_url=other).status_code == 403
    tampered = sign(phone.token, PUBLIC + path, params)
    assert phone.post(path, {**params, "Digits": "730561"}, signature=tampered).status_code == 403
    logged = caplog.text
    assert "refused voice webhook" in logged
    for secret in (phone.token, tampered, "482913", "730561"):
        assert secret not in logged


def test_signatures_checked_behind_a_tls_terminating_proxy(
    make_app: AppFactory, twiml_schema: object
) -> None:
    app = make_app(public_base_url=None, trusted_proxy_count=1)
    client = app.test_client()
    token = app.extensions["contact_router"].settings.twilio_auth_token
    params = {"CallSid": "CA" + "2" * 32, "From": "+447700900123", "To": US}
    for public, port in (
        ("https://router.example.com/voice/incoming", "443"),
        ("https://router.example.com:8443/voice/incoming", "8443"),
    ):
        response = client.post(
            "http://10.0.0.5:8000/voice/incoming",
            data={**params, "CallSid": "CA" + port.rjust(32, "0")},
            headers={
                SIGNATURE_HEADER: sign(
                    token, public, {**params, "CallSid": "CA" + port.rjust(32, "0")}
                ),
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "router.example.com",
                "X-Forwarded-Port": port,
            },
        )
        assert response.status_code == 200, public
    # Signed for the public URL but sent without the proxy's headers: the URLs differ.
    response = client.post(
        "http://10.0.0.5:8000/voice/incoming",
        data=params,
        headers={
            SIGNATURE_HEADER: sign(token, "https://router.example.com/voice/incoming", params)
        },
    )
    assert response.status_code == 403


def test_a_signed_request_without_a_call_sid_gets_a_twiml_400(
    new_call: object, phone: Phone
) -> None:
    response = phone.post("/voice/incoming", {"From": "+447700900123", "To": US})
    assert response.status_code == 400 and response.mimetype == "text/xml"
    assert b"<Hangup" in response.data
    call = Call(phone)
    call.start()
    broken = phone.post("/voice/pin?step=abc", call.params(Digits="1"))
    assert broken.status_code == 400 and b"<Say" in broken.data


def test_a_shared_key_signed_call_is_answered(make_app: AppFactory, twiml_schema: object) -> None:
    app = make_app(twilio_shared_keys=f"{SHARED_ID}={SHARED_SECRET}")
    client = app.test_client()
    params = {"CallSid": "CA" + "3" * 32, "From": "+447700900123", "To": US}
    url = PUBLIC + "/voice/incoming"
    announced = {SIGNATURE_SETTINGS_HEADER: f"key={SHARED_ID},algorithm=HMAC_SHA256"}
    response = client.post(
        url,
        data=params,
        headers={SIGNATURE_HEADER: sign(SHARED_SECRET, url, params, HMAC_SHA256), **announced},
    )
    assert response.status_code == 200 and b"<Gather" in response.data
    refused = client.post(
        url,
        data=params,
        headers={SIGNATURE_HEADER: sign(TOKEN, url, params, HMAC_SHA256), **announced},
    )
    assert refused.status_code == 403


def test_a_request_signed_for_another_host_is_refused_whatever_host_it_names(
    phone: Phone,
) -> None:
    # PUBLIC_BASE_URL is set (production requires it): the URL checked is always the public
    # one, never one rebuilt from the Host or X-Forwarded-* headers the sender chose.
    params = {**PARAMS}
    for url in ("https://evil.example/voice/incoming", "http://evil.example/voice/incoming"):
        response = phone.client.post(
            url,
            data=params,
            headers={
                SIGNATURE_HEADER: sign(phone.token, url, params),
                "X-Forwarded-Proto": url.split(":")[0],
                "X-Forwarded-Host": "evil.example",
            },
        )
        assert response.status_code == 403, url
    assert phone.post("/voice/incoming", params).status_code == 200
