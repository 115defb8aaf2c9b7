"""The app's request class (size and JSON checks on every body) and its lazy cookie sessions."""

from __future__ import annotations

import json
from typing import Any, Literal, overload

import flask
from flask import Flask
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from werkzeug.exceptions import BadRequest
from werkzeug.wsgi import LimitedStream

from router.core.validation import json_body_problem


class Request(flask.Request):
    """Flask's request, except that a body sent without a Content-Length is refused (413) when
    it reaches the size limit instead of being read cut short, and a JSON body nested too deep
    or holding a lone surrogate is refused (400) before anything parses it.

    Werkzeug stops reading such a (chunked) body at ``max_content_length`` without an error: an
    oversize email would be stored truncated, and any form or JSON silently shortened. Every
    JSON reader (Flask's get_json, the API's webargs parser, the email providers' JSON) reads
    the body through get_data, so the JSON check there covers every endpoint once: Python's
    parser raises RecursionError on deep nesting, and a lone surrogate cannot be stored.
    """

    _json_checked = False

    @overload
    def get_data(
        self, cache: bool = True, as_text: Literal[False] = False, parse_form_data: bool = False
    ) -> bytes: ...

    @overload
    def get_data(
        self, cache: bool = True, as_text: Literal[True] = ..., parse_form_data: bool = False
    ) -> str: ...

    def get_data(
        self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False
    ) -> bytes | str:
        """Return the body, refusing hostile JSON first and a body cut short at the limit."""
        if self.is_json:
            self._refuse_hostile_json()
        data: bytes | str
        # Two calls so each matches one of Werkzeug's typed overloads; the arguments are the same.
        if as_text:
            data = super().get_data(cache=cache, as_text=True, parse_form_data=parse_form_data)
        else:
            data = super().get_data(cache=cache, as_text=False, parse_form_data=parse_form_data)
        self._refuse_if_cut_short()
        return data

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        """Return the parsed JSON body, checked first even when parsed whatever its type."""
        if force:  # a body parsed as JSON whatever its Content-Type is checked as JSON too
            self._refuse_hostile_json()
        return super().get_json(force=force, silent=silent, cache=cache)

    def _refuse_hostile_json(self) -> None:
        if self._json_checked:
            return
        self._json_checked = True
        body = super().get_data(cache=True)  # cached: whoever reads it next gets the same bytes
        self._refuse_if_cut_short()
        # The checks read UTF-8 bytes, and Flask's parser would also take UTF-16 or UTF-32 (with
        # brackets and surrogates the checks cannot see): RFC 8259 JSON between systems is UTF-8.
        if body and json.detect_encoding(body) not in ("utf-8", "utf-8-sig"):
            raise BadRequest("the JSON body must be UTF-8 (RFC 8259)")
        # A provider's email (Postmark's JSON) is kept, its text cleaned by the email channel,
        # rather than refused: a 4xx would make the provider drop a customer's message.
        problem = json_body_problem(body, allow_lone_surrogates=self.path.startswith("/email/"))
        if problem:
            raise BadRequest(problem)

    def _load_form_data(self) -> None:
        super()._load_form_data()
        self._refuse_if_cut_short()

    def _refuse_if_cut_short(self) -> None:
        stream = self.stream
        cut_short = isinstance(stream, LimitedStream) and stream.is_exhausted
        if self.content_length is None and cut_short:
            stream.read(1)  # past a maximum this raises RequestEntityTooLarge


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions (the console's), not unpacked for requests without the
    cookie: every webhook would otherwise build a signer for nothing."""

    def open_session(self, app: Flask, request: flask.Request) -> SecureCookieSession | None:
        """Return an empty session when the request carries no session cookie."""
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)
