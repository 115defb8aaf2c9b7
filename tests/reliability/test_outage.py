"""The database goes away in the middle of a run, then comes back.

While it is gone: a caller still reaches a human (the fallback queue, whatever step the call is
at), an email delivery answers 503 so the provider retries, a chat start or Contact Support form
answers 503 with Retry-After, /readyz answers 503 while /healthz stays up, and nothing is half
written. When it is back, the same retried requests are stored, once, and new calls are served
normally again, without restarting anything.

PostgreSQL: the app reaches the database through a TCP proxy the test controls; cutting it resets
every connection and refuses new ones (as a database restart or fail-over does). SQLite: the
volume holding the file is replaced (by a file where its folder was, or by a folder holding a
file that is not a database); the app's idle pooled connections are dropped as a restarted or
newly spawned worker's would be, since an open SQLite handle keeps reading the moved file.
"""

from __future__ import annotations

import json
import random
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app import create_app
from router.runtime import EXTENSION_KEY
from tests.conftest import POSTGRES_SKIP_REASON, POSTGRES_URL
from tests.reliability.harness import (
    ACME_PIN,
    Answer,
    Delivery,
    Server,
    TcpProxy,
    app_settings,
    census,
    chat,
    email,
    enqueued,
    gather_action,
    mime_message,
    postgres_address,
    production_env,
    send,
    through_proxy,
    voice,
    voice_params,
)


@dataclass
class Outage:
    """An app whose database can be taken away and given back."""

    app: Flask
    url: str  # where the test itself reads the store (never through the outage)
    cut: Callable[[], None]
    restore: Callable[[], None]


def _sqlite_outage(store: str, replacement: str) -> Iterator[Outage]:
    path = Path(store.removeprefix("sqlite:///"))
    folder = path.parent
    away = folder.with_name(folder.name + ".away")
    # Built fresh: its store is moved away under it (an app of this test's own).
    app = create_app(app_settings(store))

    def cut() -> None:
        folder.rename(away)
        if replacement == "unopenable":
            folder.write_text("the volume is gone\n")  # opening the file fails: not a directory
        else:
            folder.mkdir()
            path.write_bytes(b"this is not an SQLite database\n" * 256)
        app.extensions[EXTENSION_KEY].db.dispose()

    def restore() -> None:
        if folder.is_dir():
            shutil.rmtree(folder)
        else:
            folder.unlink()
        away.rename(folder)
        # Nothing else: the app must find its database again by itself.

    try:
        yield Outage(app, store, cut, restore)
    finally:
        if away.exists():
            restore()
        app.extensions[EXTENSION_KEY].db.dispose()


def _postgres_outage(store: str) -> Iterator[Outage]:
    proxy = TcpProxy(*postgres_address(store))
    # Built fresh: it reaches its store through this test's own proxy, which the test cuts.
    app = create_app(app_settings(through_proxy(store, proxy)))
    try:
        yield Outage(app, store, proxy.cut, proxy.restore)
    finally:
        app.extensions[EXTENSION_KEY].db.dispose()
        proxy.close()


@pytest.fixture(
    params=[
        "sqlite-unopenable",
        "sqlite-not-a-database",
        pytest.param("postgresql-connection-cut", marks=pytest.mark.postgres),
    ]
)
def outage(request: pytest.FixtureRequest, tmp_path: Path, policy: object) -> Iterator[Outage]:
    from tests.reliability.harness import postgres_schema, prepare_store

    if request.param.startswith("sqlite"):
        (tmp_path / "volume").mkdir()
        store = f"sqlite:///{tmp_path / 'volume' / 'router.sqlite3'}"
        prepare_store(store, policy)  # type: ignore[arg-type]
        yield from _sqlite_outage(store, request.param.removeprefix("sqlite-"))
        return
    if not POSTGRES_URL:
        pytest.skip(POSTGRES_SKIP_REASON)
    with postgres_schema("outage") as store:
        prepare_store(store, policy)  # type: ignore[arg-type]
        yield from _postgres_outage(store)


def post(client: FlaskClient, delivery: Delivery) -> TestResponse:
    return client.open(delivery.path, **delivery.client_kwargs())


def new_call(client: FlaskClient, caller: str) -> tuple[dict[str, str], TestResponse]:
    params = voice_params(f"CA{uuid.uuid4().hex}", caller)
    return params, post(client, voice("/voice/incoming", params))


def assert_fallback_queue(response: TestResponse) -> None:
    """The caller is put in the fallback queue (a human picks them up), never dropped."""
    assert response.status_code == 200
    queue = enqueued(response.data)
    assert queue is not None and queue.text == "fallback", response.data


def assert_retry_later(response: TestResponse) -> None:
    assert response.status_code == 503, response.data
    assert int(response.headers["Retry-After"]) > 0
    assert response.is_json and response.json is not None and response.json["message"]


def test_database_outage_degrades_then_resumes(outage: Outage) -> None:
    client = outage.app.test_client()
    # Before: normal service.
    params, answer = new_call(client, "+13035551000")
    assert answer.status_code == 200 and "/voice/pin" in gather_action(answer.data)
    mid_call = voice(gather_action(answer.data), {**params, "Digits": ACME_PIN})
    before_id, before_raw = mime_message()
    assert post(client, email(before_raw, before_id)).status_code == 200
    assert post(client, chat()).status_code == 201
    assert client.get("/readyz").status_code == 200

    outage.cut()
    during_calls: list[str] = []
    mails = [mime_message() for _ in range(3)]
    chats = [chat() for _ in range(3)]
    form = chat(
        path="/portal/requests",
        body={"subject": "SSO broken", "description": "Nobody can log in.", "severity": "S1"},
    )
    # A new call and a call already in the IVR both reach the fallback queue.
    for number in range(3):
        call_params, answer = new_call(client, f"+1303555110{number}")
        assert_fallback_queue(answer)
        during_calls.append(call_params["CallSid"])
    assert_fallback_queue(post(client, mid_call))
    assert_fallback_queue(post(client, voice("/voice/fallback", voice_params("CAfb", "+1"))))
    for message_id, raw in mails:
        assert_retry_later(post(client, email(raw, message_id)))
    for delivery in chats:
        assert_retry_later(post(client, delivery))
    assert_retry_later(post(client, form))
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200
    assert client.get("/metrics").status_code == 200

    outage.restore()
    # The providers' retries are now stored (the same bytes as before).
    for message_id, raw in mails:
        response = post(client, email(raw, message_id))
        assert response.status_code == 200 and response.json["outcome"] == "created"
    for delivery in chats:
        response = post(client, delivery)
        assert response.status_code == 201, response.data
    assert post(client, form).status_code == 201
    # New calls are answered by the IVR again; so is a retried delivery of the cut-off step.
    params, answer = new_call(client, "+13035551200")
    assert "/voice/pin" in gather_action(answer.data)
    assert "/voice/severity" in gather_action(post(client, mid_call).data)
    assert client.get("/readyz").status_code == 200

    stored = census(outage.url)
    assert not stored.duplicates and not stored.orphans
    for message_id, _ in [(before_id, b""), *mails]:
        assert stored.messages[message_id] == 1
        assert stored.contact("email", message_id) is not None
    # Calls answered from the fallback queue left no state behind (no database was touched).
    assert not set(during_calls) & set(stored.calls)
    # 1 email + 1 chat before; 3 emails, 3 chats and the form after: nothing lost or doubled.
    assert len(stored.contacts) == 2 + 3 + 3 + 1
    assert json.loads(post(client, chats[0]).data)["contact_id"] in stored.contacts.values()


@pytest.mark.slow
@pytest.mark.postgres
def test_connection_cut_under_load_loses_nothing_acknowledged(
    tmp_path: Path, policy: object, server_log: IO[str]
) -> None:
    """gunicorn under a burst while the database connection is cut and restored mid-burst."""
    from tests.reliability.harness import postgres_schema, prepare_store

    if not POSTGRES_URL:
        pytest.skip(POSTGRES_SKIP_REASON)
    with postgres_schema("outage_load") as store:
        prepare_store(store, policy)  # type: ignore[arg-type]
        proxy = TcpProxy(*postgres_address(store))
        server = Server(production_env(through_proxy(store, proxy)), server_log, workers=2)
        try:
            server.wait_ready()
            calls = [
                voice(
                    "/voice/incoming", voice_params(f"CA{uuid.uuid4().hex}", f"+130355520{n:02d}")
                )
                for n in range(40)
            ]
            deliveries = [email(raw, mid) for mid, raw in (mime_message() for _ in range(60))]
            deliveries += [chat() for _ in range(40)] + calls
            random.Random(11).shuffle(deliveries)
            answered = 0
            lock = threading.Lock()
            cut_at, restore_at = len(deliveries) // 4, len(deliveries) // 2

            def one(delivery: Delivery) -> tuple[Delivery, Answer]:
                nonlocal answered
                answer = send(server.port, delivery)
                with lock:
                    answered += 1
                    if answered == cut_at:
                        proxy.cut()
                    elif answered == restore_at:
                        proxy.restore()
                return delivery, answer

            with ThreadPoolExecutor(max_workers=8) as pool:
                results = list(pool.map(one, deliveries))

            refused = [d for d, a in results if d.kind != "voice" and not 200 <= a.status < 300]
            assert refused, "the cut did not hit any delivery"
            for delivery, answer in results:
                if delivery.kind == "voice":
                    # Every caller is answered: the IVR, or the fallback queue while cut off.
                    assert answer.status == 200, answer
                    assert enqueued(answer.body) is not None or b"/voice/pin" in answer.body
                elif not 200 <= answer.status < 300:
                    assert answer.status == 503 and "Retry-After" in answer.headers, answer
            stored = census(store)
            for delivery, answer in results:
                if delivery.kind == "email" and 200 <= answer.status < 300:
                    assert stored.messages.get(delivery.key) == 1
                if delivery.kind == "chat" and 200 <= answer.status < 300:
                    assert json.loads(answer.body)["contact_id"] in stored.contacts.values()
            pending = refused
            for _ in range(20):
                pending = [d for d in pending if not 200 <= send(server.port, d).status < 300]
                if not pending:
                    break
                time.sleep(0.2)
            assert not pending
            final = census(store)
            assert not final.duplicates and not final.orphans
            assert len(final.contacts) == 60 + 40
        finally:
            server.stop()
            proxy.close()


@pytest.mark.postgres
def test_a_database_that_stops_answering_cannot_hold_a_caller(
    tmp_path: Path, policy: object
) -> None:
    """Connections accepted but never answered: the caller still hears the fallback in time."""
    from tests.reliability.harness import postgres_schema, prepare_store

    if not POSTGRES_URL:
        pytest.skip(POSTGRES_SKIP_REASON)
    with postgres_schema("outage_stall") as store:
        prepare_store(store, policy)  # type: ignore[arg-type]
        proxy = TcpProxy(*postgres_address(store))
        # Built fresh: it reaches its store through this test's own proxy, which stalls.
        app = create_app(app_settings(through_proxy(store, proxy)))
        client = app.test_client()
        try:
            assert new_call(client, "+13035551300")[1].status_code == 200
            proxy.stall()
            started = time.monotonic()
            assert_fallback_queue(new_call(client, "+13035551301")[1])
            # Twilio waits 15 s for TwiML before giving up on the call's Voice URL.
            assert time.monotonic() - started < 10
            message_id, raw = mime_message()
            assert_retry_later(post(client, email(raw, message_id)))
            proxy.restore()
            assert "/voice/pin" in gather_action(new_call(client, "+13035551302")[1].data)
            assert post(client, email(raw, message_id)).status_code == 200
        finally:
            app.extensions[EXTENSION_KEY].db.dispose()
            proxy.close()


def test_a_long_sqlite_write_lock_cannot_hold_a_caller(tmp_path: Path, policy: object) -> None:
    """Another process holds SQLite's write lock: the caller hears the fallback in time."""
    import sqlite3

    from router.store.db import SQLITE_LOCK_WAIT_SECONDS
    from tests.reliability.harness import prepare_store

    path = tmp_path / "router.sqlite3"
    store = f"sqlite:///{path}"
    prepare_store(store, policy)  # type: ignore[arg-type]
    # Built fresh: on this test's own store, which another connection holds locked.
    app = create_app(app_settings(store))
    client = app.test_client()
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        assert "/voice/pin" in gather_action(new_call(client, "+13035551400")[1].data)
        writer.execute("BEGIN IMMEDIATE")  # a bulk import, say, in another process
        started = time.monotonic()
        assert_fallback_queue(new_call(client, "+13035551401")[1])
        waited = time.monotonic() - started
        # Twilio waits 15 s for TwiML before giving up on the call's Voice URL.
        assert SQLITE_LOCK_WAIT_SECONDS - 1 < waited < 10
        message_id, raw = mime_message()
        assert_retry_later(post(client, email(raw, message_id)))
        writer.execute("ROLLBACK")
        assert "/voice/pin" in gather_action(new_call(client, "+13035551402")[1].data)
        assert post(client, email(raw, message_id)).status_code == 200
    finally:
        writer.close()
        app.extensions[EXTENSION_KEY].db.dispose()
