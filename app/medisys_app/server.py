"""HTTP(S) server: routing, JSON endpoints, access log, TLS and graceful shutdown."""

import json
import logging
import re
import signal
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import __version__
from .backends import BackendUnavailable, first_line
from .metrics import CONTENT_TYPE as METRICS_TYPE, Metrics
from .settings import SettingsError, from_env

log = logging.getLogger("medisys.app")
access_log = logging.getLogger("medisys.access")

MAX_NOTE_CHARS = 10000
MAX_BODY_BYTES = 64 * 1024
CACHE_TTL = 60
UNMATCHED = "unmatched"  # route label for unknown paths (keeps label cardinality bounded)
# TLS 1.2 only with forward-secret AEAD suites (TLS 1.3's suites are all AEAD): the edge's own
# profile (components/templates/haproxy.cfg), so HAProxy -> app is no weaker than client -> HAProxy.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
HANDSHAKE_TIMEOUT = 10  # seconds a connection may take to complete its TLS handshake


class Response:
    def __init__(self, status, payload, content_type="application/json", headers=None):
        self.status = status
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload)
        self.body = payload.encode("utf-8")
        self.content_type = content_type
        self.headers = headers or {}


def error(status, message):
    return Response(status, {"error": message})


class HttpError(Exception):
    """Raised by request handling to answer with a client error."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


class App:
    """Request handling, independent of the HTTP plumbing; backends are injected."""

    ROUTES = (
        ("GET", "/", "index"),
        ("GET", "/health", "health"),
        ("GET", "/health/db", "health_db"),
        ("GET", "/health/redis", "health_redis"),
        ("GET", "/metrics", "metrics_text"),
        ("POST", "/api/notes", "create_note"),
        ("GET", "/api/notes/{id}", "get_note"),
    )

    def __init__(self, server_name, db, cache, metrics=None):
        self.server_name = server_name
        self.db = db
        self.cache = cache
        self.metrics = metrics or Metrics(server_name, __version__)
        self.draining = threading.Event()
        self.schema_ready = threading.Event()
        self._routes = [
            (method, re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[0-9]{1,18})", t) + "$"), t, name)
            for method, t, name in self.ROUTES
        ]

    def match(self, method, path):
        """Return (route template, handler or None, params, allowed methods)."""
        path = path.split("?", 1)[0]
        allowed = []
        for m, regex, template, name in self._routes:
            found = regex.match(path)
            if found and m == method:
                return template, getattr(self, name), found.groupdict(), [m]
            if found:
                allowed.append(m)
                route = template
        return (route if allowed else UNMATCHED), None, {}, allowed

    def dispatch(self, method, path, read_body=lambda: b""):
        """Return (route, Response); never raises."""
        route, handler, params, allowed = self.match(method, path)
        try:
            if handler is None and allowed:
                return route, Response(405, {"error": "method not allowed"},
                                       headers={"Allow": ", ".join(allowed)})
            if handler is None:
                return route, error(404, "not found")
            return route, handler(read_body=read_body, **params)
        except HttpError as exc:
            return route, error(exc.status, exc.message)
        except BackendUnavailable as exc:
            return route, error(503, str(exc))
        except Exception as exc:  # a bug: log the type and first line, answer 500
            log.error("unhandled %s on %s: %s", type(exc).__name__, route, first_line(exc))
            return route, error(500, "internal error")

    # --- endpoints -------------------------------------------------------
    def index(self, **_):
        return Response(200, {"service": "medisys-app", "server": self.server_name,
                              "version": __version__})

    def health(self, **_):
        if self.draining.is_set():
            return Response(503, {"status": "draining", "server": self.server_name})
        return Response(200, {"status": "ok", "server": self.server_name})

    def health_db(self, **_):
        result = self.db.check()
        nodes = [result["primary"]] + result["replicas"]
        healthy = all(n["ok"] for n in nodes)
        return Response(200 if healthy else 503, {
            "status": "ok" if healthy else "error", "server": self.server_name, **result,
            "reads_from": "replicas" if result["replicas"] else "primary"})

    def health_redis(self, **_):
        try:
            nodes = self.cache.check()
        except BackendUnavailable as exc:
            return Response(503, {"status": "error", "server": self.server_name, "error": str(exc)})
        healthy = bool(nodes) and all(n["ok"] for n in nodes)
        return Response(200 if healthy else 503, {
            "status": "ok" if healthy else "error", "server": self.server_name, "nodes": nodes})

    def metrics_text(self, **_):
        return Response(200, self.metrics.render(), content_type=METRICS_TYPE)

    def create_note(self, read_body, **_):
        try:
            data = json.loads(read_body().decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return error(400, "request body must be JSON")
        body = data.get("body") if isinstance(data, dict) else None
        if not isinstance(body, str) or not body.strip():
            return error(400, 'field "body" is required and must be a non-empty string')
        if len(body) > MAX_NOTE_CHARS:
            return error(400, f'field "body" is longer than {MAX_NOTE_CHARS} characters')
        if "\x00" in body:
            return error(400, 'field "body" must not contain NUL characters')
        self.ensure_schema_once()
        return Response(201, {"id": self.db.insert_note(body), "body": body})

    def get_note(self, id, **_):
        note_id, key = int(id), f"note:{id}"
        try:
            cached = self.cache.get(key)
            if cached is not None:
                return Response(200, {"id": note_id, "body": cached, "source": "cache"})
        except BackendUnavailable as exc:
            log.warning("cache read skipped: %s", exc)
        found = self.db.read_note(note_id)
        if found is None:
            return error(404, "note not found")
        body, source = found
        try:
            self.cache.set(key, body, CACHE_TTL)
        except BackendUnavailable as exc:
            log.warning("cache write skipped: %s", exc)
        return Response(200, {"id": note_id, "body": body, "source": source})

    # --- schema ------------------------------------------------------------
    def ensure_schema_once(self):
        if not self.schema_ready.is_set():
            try:
                self.db.ensure_schema()
            except Exception as exc:
                raise BackendUnavailable("database unavailable") from exc
            self.schema_ready.set()

    def prepare_schema(self, timeout=60.0, stop=None, sleep=time.sleep):
        """Create the schema at start, retrying with backoff for up to `timeout` s."""
        deadline, delay = time.monotonic() + timeout, 1.0
        while not (stop and stop.is_set()):
            try:
                self.ensure_schema_once()
                log.info("schema ready (app.notes)")
                return True
            except BackendUnavailable as exc:
                cause = first_line(exc.__cause__ or exc)
                if time.monotonic() + delay > deadline:
                    log.error("schema not ready after %.0f s (%s); will retry on first write",
                              timeout, cause)
                    return False
                log.warning("database not ready (%s); retrying in %.0f s", cause, delay)
                sleep(delay)
                delay = min(delay * 2, 10.0)
        return False


class Handler(BaseHTTPRequestHandler):
    server_version = "medisys-app"
    timeout = 30  # seconds a client may idle; bounds how long shutdown waits

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_DELETE(self):
        self._handle("DELETE")

    def _read_body(self):
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise HttpError(411, "Content-Length is required")
        if int(length) > MAX_BODY_BYTES:
            raise HttpError(413, "request body too large")
        return self.rfile.read(int(length))

    def _handle(self, method):
        app, start = self.server.app, time.monotonic()
        route, resp = app.dispatch(method, self.path, self._read_body)
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(resp.body)))
        self.send_header("X-Served-By", app.server_name)
        for name, value in resp.headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(resp.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away; the request is still counted
        elapsed = time.monotonic() - start
        app.metrics.observe(method, route, resp.status, elapsed)
        access_log.info("%s %s %d %.1fms", method, route, resp.status, elapsed * 1000)

    def version_string(self):
        return self.server_version

    def log_message(self, format, *args):
        pass  # the access log above replaces the default (which logs raw paths)


class TLSConfigError(ValueError):
    """The certificate or key cannot be loaded; the message names the files, never their content."""


def tls_context(cert_file, key_file):
    """Server-side TLS: 1.2 or newer, forward-secret AEAD suites, no client certificate asked."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        context.load_cert_chain(cert_file, key_file)
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
        raise TLSConfigError(f"APP_TLS_CERT_FILE={cert_file} / APP_TLS_KEY_FILE={key_file}: cannot load the "
                             f"certificate and its private key ({reason}); are they PEM and a matching pair?") from None
    return context


class Server(ThreadingHTTPServer):
    """Thread per connection; with `tls` (an SSLContext) every connection is HTTPS.

    The TLS handshake runs in the connection's own thread, never in the accept loop, so a slow or
    broken client cannot hold up the others; a failed handshake is logged and the connection closed.
    """

    daemon_threads = False  # server_close() waits for in-flight requests

    def __init__(self, address, app, tls=None):
        super().__init__(address, Handler)
        self.app = app
        self.tls = tls

    @property
    def scheme(self):
        return "https" if self.tls is not None else "http"

    def finish_request(self, request, client_address):
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            # Takes over the socket (the plain one is detached); closed below.
            connection = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.warning("TLS handshake with %s failed: %s", client_address[0],
                        getattr(exc, "reason", None) or type(exc).__name__)
            return
        try:
            self.RequestHandlerClass(connection, client_address, self)
        finally:
            self.shutdown_request(connection)


class StopFlag:
    """Set by SIGTERM/SIGINT. A plain attribute on purpose: a signal handler must
    not take locks (threading.Event.set() can deadlock the interrupted main thread)."""

    def __init__(self):
        self._set = False

    def set(self, *_):
        self._set = True

    def is_set(self):
        return self._set


def run(server, app, stop, drain_seconds):
    """Serve until `stop.is_set()`, then drain and shut down gracefully."""
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    log.info("listening on %s:%d (%s) as %s", *server.server_address[:2], server.scheme, app.server_name)
    threading.Thread(target=app.prepare_schema, kwargs={"stop": stop},
                     name="schema", daemon=True).start()
    while not stop.is_set():
        time.sleep(0.2)
    app.draining.set()
    log.info("shutdown requested: /health answers 503, draining %.1f s", drain_seconds)
    time.sleep(drain_seconds)
    server.shutdown()  # stop accepting
    server.server_close()  # wait for in-flight requests
    log.info("stopped")


def main():
    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = from_env()
    except SettingsError as exc:
        print(f"medisys-app: configuration error: {exc}", file=sys.stderr)
        return 2
    tls = None
    if settings.tls_cert_file:
        try:
            tls = tls_context(settings.tls_cert_file, settings.tls_key_file)
        except TLSConfigError as exc:
            print(f"medisys-app: configuration error: {exc}", file=sys.stderr)
            return 2
    else:
        log.warning("APP_TLS_CERT_FILE and APP_TLS_KEY_FILE are not set: serving plain HTTP (local development only)")
    from .backends import Cache, Database

    app = App(settings.server_name, Database(settings), Cache(settings))
    stop = StopFlag()
    signal.signal(signal.SIGTERM, stop.set)
    signal.signal(signal.SIGINT, stop.set)
    try:
        run(Server(("0.0.0.0", settings.port), app, tls), app, stop, settings.drain_seconds)
    finally:
        app.db.close()
        app.cache.close()
    return 0
