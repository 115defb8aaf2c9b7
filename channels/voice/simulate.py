"""`flask --app app simulate call`: play a phone call against a running instance, as Twilio would.

Every request is signed with this app's TWILIO_AUTH_TOKEN over the public URL, the way Twilio
signs webhooks. The simulator follows Gather actions, Redirects, the Enqueue wait URL and action
URL, and the status callback, and prints what the caller hears at each step. PIN digits are
masked in the output.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from dataclasses import dataclass, field

import click
from flask.cli import with_appcontext

from channels.voice.signature import SIGNATURE_HEADER, sign
from channels.voice.views import IDEMPOTENCY_HEADER
from router.runtime import runtime

TIMEOUT_SECONDS = 20
MAX_REQUESTS = 60  # a flow that loops (a Redirect to itself) stops here

# (url, form parameters, headers) -> (HTTP status, body)
Transport = Callable[[str, dict[str, str], dict[str, str]], tuple[int, bytes]]


class SimulationError(click.ClickException):
    """The instance answered with something Twilio could not play."""


@dataclass(frozen=True)
class Verb:
    """One TwiML verb: its name, attributes, text, and nested verbs (a Gather's prompts)."""

    name: str
    attrs: dict[str, str]
    text: str
    children: tuple[Verb, ...] = ()


def parse_twiml(body: bytes) -> list[Verb]:
    """Return the verbs of a TwiML <Response>."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise SimulationError(f"the answer is not XML: {exc}") from None
    if root.tag != "Response":
        raise SimulationError(f"the answer is not TwiML (root <{root.tag}>)")
    return [_verb(element) for element in root]


def _verb(element: ElementTree.Element) -> Verb:
    return Verb(
        name=element.tag,
        attrs=dict(element.attrib),
        text=(element.text or "").strip(),
        children=tuple(_verb(child) for child in element),
    )


@dataclass
class Step:
    """One request the simulator made and what came back."""

    url: str
    params: dict[str, str]
    status: int
    verbs: list[Verb]


@dataclass
class CallSimulator:
    """Play one call through a transport, printing what the caller hears."""

    transport: Transport
    base_url: str
    auth_token: str
    to_number: str
    from_number: str
    digits: list[str]
    public_url: str | None = None
    call_sid: str = field(default_factory=lambda: "CA" + uuid.uuid4().hex)
    queue_result: str = "bridged"
    wait_rounds: int = 1
    echo: Callable[[str], None] = print
    steps: list[Step] = field(default_factory=list)
    heard: list[str] = field(default_factory=list)
    ended_by: str = ""

    def run(self) -> list[Step]:
        """Play the call to its end; return every request made."""
        self.echo(f"calling {self.to_number} from {self.from_number} (CallSid {self.call_sid})")
        url: str | None = self._url("/voice/incoming")
        params: dict[str, str] = {}
        requests = 0
        while url is not None:
            requests += 1
            if requests > MAX_REQUESTS:
                raise SimulationError(f"the call did not end after {MAX_REQUESTS} requests")
            verbs = self.post(url, params)
            url, params = self._play(verbs, url)
        self._status("completed")
        return self.steps

    def post(self, url: str, extra: dict[str, str], *, expect_twiml: bool = True) -> list[Verb]:
        """Post one signed webhook and return the TwiML verbs it answered."""
        params = {
            "AccountSid": "AC" + "0" * 32,
            "ApiVersion": "2010-04-01",
            "CallSid": self.call_sid,
            "CallStatus": "in-progress",
            "Direction": "inbound",
            "From": self.from_number,
            "Caller": self.from_number,
            "To": self.to_number,
            "Called": self.to_number,
            **extra,
        }
        headers = {
            SIGNATURE_HEADER: sign(self.auth_token, self._signed_url(url), params),
            IDEMPOTENCY_HEADER: uuid.uuid4().hex,
        }
        status, body = self.transport(url, params, headers)
        verbs = parse_twiml(body) if expect_twiml and status == 200 else []
        self.steps.append(Step(url=url, params=params, status=status, verbs=verbs))
        if status == 403:
            raise SimulationError(
                "403: the instance refused the signature; run the simulator with the same "
                "TWILIO_AUTH_TOKEN (and PUBLIC_BASE_URL, or --public-url) as the instance"
            )
        if expect_twiml and status != 200:
            raise SimulationError(f"HTTP {status} from {url}: Twilio would say an error occurred")
        return verbs

    def _play(self, verbs: list[Verb], url: str) -> tuple[str | None, dict[str, str]]:
        """Play verbs in order; return the next request (None when the call ends)."""
        for verb in verbs:
            if verb.name == "Say":
                self._hear(verb)
            elif verb.name == "Play":
                self.echo(f"  ♪ {verb.text}")
            elif verb.name == "Pause":
                self.echo(f"  (silence, {verb.attrs.get('length', '1')} s)")
            elif verb.name == "Gather":
                for prompt in verb.children:
                    if prompt.name == "Say":
                        self._hear(prompt)
                target = urllib.parse.urljoin(url, verb.attrs.get("action", url))
                if not self.digits:
                    self.echo("caller hangs up")
                    self.ended_by = "caller"
                    return None, {}
                keyed = self.digits.pop(0)
                if keyed:
                    shown = "*" * len(keyed) if target.split("?")[0].endswith("/pin") else keyed
                    self.echo(f"caller keys {shown}#")
                    return target, {"Digits": keyed, "FinishedOnKey": "#"}
                self.echo("caller says nothing")
                if verb.attrs.get("actionOnEmptyResult") == "true":
                    return target, {"Digits": ""}
            elif verb.name == "Redirect":
                return urllib.parse.urljoin(url, verb.text), {}
            elif verb.name == "Enqueue":
                return self._queue(verb, url)
            elif verb.name in ("Hangup", "Reject"):
                self.echo("the IVR hangs up")
                self.ended_by = "ivr"
                return None, {}
            else:
                self.echo(f"  (TwiML <{verb.name}> is not simulated)")
        self.ended_by = "ivr"
        return None, {}

    def _queue(self, verb: Verb, url: str) -> tuple[str | None, dict[str, str]]:
        self.echo(f"caller waits in queue {verb.text!r}")
        wait_url = verb.attrs.get("waitUrl")
        for round_ in range(self.wait_rounds if wait_url else 0):
            assert wait_url is not None
            wait_params = {
                "QueueSid": "QU" + "0" * 32,
                "QueuePosition": "1",
                "CurrentQueueSize": "1",
                "QueueTime": str(30 * round_),
                "AvgQueueTime": "150",
            }
            for wait_verb in self.post(urllib.parse.urljoin(url, wait_url), wait_params):
                if wait_verb.name == "Say":
                    self._hear(wait_verb)
                elif wait_verb.name == "Play":
                    self.echo(f"  ♪ {wait_verb.text}")
        action = verb.attrs.get("action")
        if self.queue_result == "bridged":
            self.echo("an engineer answers; the conversation ends")
        elif self.queue_result == "hangup":
            self.echo("caller hangs up while waiting")
        else:
            self.echo(f"Twilio reports the queue result {self.queue_result!r}")
        if action is None:
            self.ended_by = "queue"
            return None, {}
        queue_time = str(30 * max(self.wait_rounds, 1))
        params = {"QueueResult": self.queue_result, "QueueTime": queue_time}
        target = urllib.parse.urljoin(url, action)
        if self.queue_result == "hangup":
            self.post(target, params)
            self.ended_by = "caller"
            return None, {}
        return target, params

    def _status(self, call_status: str) -> None:
        self.post(
            self._url("/voice/status"),
            {"CallStatus": call_status, "CallDuration": "60"},
            expect_twiml=False,
        )
        self.echo(f"call {call_status}")

    def _hear(self, verb: Verb) -> None:
        self.heard.append(verb.text)
        self.echo(f"  [{verb.attrs.get('language', '')}] {verb.text}")

    def _url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def _signed_url(self, url: str) -> str:
        """Return the URL Twilio would have requested (and signed): the public one."""
        if not self.public_url:
            return url
        parts = urllib.parse.urlsplit(url)
        tail = parts.path + (f"?{parts.query}" if parts.query else "")
        return self.public_url.rstrip("/") + tail


def http_transport(url: str, params: dict[str, str], headers: dict[str, str]) -> tuple[int, bytes]:
    """Post a form over HTTP; return the status and body (errors included)."""
    request = urllib.request.Request(
        url,
        data=urllib.parse.urlencode(params).encode(),
        headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except urllib.error.URLError as exc:
        raise SimulationError(f"cannot reach {url}: {exc.reason}") from None


def split_digits(raw: str) -> list[str]:
    """Read --digits: comma-separated entries, one per prompt; an empty entry is silence."""
    return [entry.strip().rstrip("#") for entry in raw.split(",")] if raw else []


@click.command("call")
@click.option(
    "--url",
    "base_url",
    default="http://127.0.0.1:5000",
    show_default=True,
    help="Base URL of the running instance.",
)
@click.option(
    "--to", "to_number", required=True, help="Regional number dialled, e.g. +448000668529."
)
@click.option("--from", "from_number", default="+15005550006", show_default=True, help="Caller ID.")
@click.option(
    "--digits",
    default="",
    help="What the caller keys at each prompt, comma-separated; an empty entry is silence "
    "(e.g. 482913,1,2: PIN, severity 1, topic 2).",
)
@click.option(
    "--public-url",
    default=None,
    help="Public base URL Twilio would call (signatures cover it); default PUBLIC_BASE_URL, "
    "else --url.",
)
@click.option(
    "--queue-result",
    type=click.Choice(["bridged", "hangup", "queue-full", "error"]),
    default="bridged",
    show_default=True,
    help="How the caller leaves the queue.",
)
@click.option(
    "--wait-rounds",
    type=click.IntRange(0, 10),
    default=1,
    show_default=True,
    help="Times the wait URL plays before the caller leaves the queue.",
)
@click.option("--call-sid", default=None, help="CallSid to use (default: a new one).")
@with_appcontext
def call_command(
    base_url: str,
    to_number: str,
    from_number: str,
    digits: str,
    public_url: str | None,
    queue_result: str,
    wait_rounds: int,
    call_sid: str | None,
) -> None:
    """Play a phone call against a running instance and print what the caller hears."""
    settings = runtime().settings
    simulator = CallSimulator(
        transport=http_transport,
        base_url=base_url,
        auth_token=settings.twilio_auth_token,
        to_number=to_number,
        from_number=from_number,
        digits=split_digits(digits),
        public_url=public_url or settings.public_base_url,
        queue_result=queue_result,
        wait_rounds=wait_rounds,
        echo=click.echo,
    )
    if call_sid:
        simulator.call_sid = call_sid
    simulator.run()
