"""gunicorn's settings for the web process, shared by the Procfile and `make serve`.

Nothing here reads the environment: the values come from config.settings (WEB_THREADS,
REQUEST_READ_TIMEOUT_SECONDS, REQUEST_MIN_BYTES_PER_SECOND, TRUSTED_PROXY_COUNT); the Procfile
and the Makefile pass the bind address and WEB_CONCURRENCY's worker count on the command line.
"""

from app import MAX_CONTENT_LENGTH
from config.settings import Settings, SettingsError
from router.serving import BoundedReadWorker

try:
    _settings = Settings.from_env()
except SettingsError as exc:
    raise SystemExit(f"Error: {exc}") from None  # one line naming the variable, no traceback

# gthread workers with a deadline on reading each request (router/serving.py): a slow client
# holds one thread until its deadline, never a whole worker for as long as it likes.
worker_class = BoundedReadWorker.configured(
    read_timeout=_settings.request_read_timeout_seconds,
    min_rate=_settings.request_min_bytes_per_second,
    # The largest body any endpoint takes is read ahead whole; past it the app answers 413.
    body_limit=max(MAX_CONTENT_LENGTH, _settings.email_max_message_bytes),
)
threads = _settings.web_threads
# A worker takes no more connections than it has threads: one whose threads are all held
# accepts nothing, and the next connection goes to a worker with a thread free.
worker_connections = threads
# So no connection is kept open idle between requests (a kept-alive connection would count
# against those connections); the proxy in front keeps clients' connections alive.
keepalive = 0

# gunicorn trusts no X-Forwarded-* header, nor any header-borne SCRIPT_NAME (its default trusts
# them from 127.0.0.1): the app reads forwarded headers itself, from exactly
# TRUSTED_PROXY_COUNT proxies, and only when that is set (channels/voice/signature.py).
forwarded_allow_ips = ""
secure_scheme_headers: dict[str, str] = {}
forwarder_headers = ""

# No run-time control socket: its default path is one per user, so two instances on a host
# would take each other's, and nothing here needs gunicornc.
control_socket_disable = True
