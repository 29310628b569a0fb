"""Which Docker engine a docker provider talks to, decided from its configuration as upstream decides it.

Upstream is terraform-provider-docker v4.5.0 (the Terraform provider inside pulumi-docker 5.2.0):
internal/provider/provider.go (the schema, its defaults) and internal/provider/config.go
(`ProviderConfig.MakeClient`). The Pulumi names are the camelCase ones the engine sends to the
plugin (host, context, sshOpts, caMaterial, certMaterial, keyMaterial, certPath,
disableDockerDaemonCheck, registryAuth), in Configure's `args` (secrets still wrapped; base.to_dict
unwraps them) and, for the default provider, from the stack's `docker:*` settings.

Defaults, each only when the setting is not given:
  host      $DOCKER_HOST, else unix:///var/run/docker.sock
  context   $DOCKER_CONTEXT; when set, it overrides `host`: the host of the Docker context of that
            name, read from ~/.docker/contexts/meta/*/meta.json (its endpoint only, no TLS)
  sshOpts   $DOCKER_SSH_OPTS split at white space
  caMaterial, certMaterial, keyMaterial   $DOCKER_CA_MATERIAL, $DOCKER_CERT_MATERIAL, $DOCKER_KEY_MATERIAL
  certPath  $DOCKER_CERT_PATH
How the client connects, first match wins (MakeClient):
  1. certMaterial or keyMaterial: both are required, certPath must be empty; TLS with that client
     certificate. The server is verified against caMaterial; without caMaterial it is not verified
     at all (InsecureSkipVerify).
  2. certPath: TLS with DIR/ca.pem, DIR/cert.pem, DIR/key.pem, the server verified.
  3. an ssh:// host: the `ssh` binary, with sshOpts before its own arguments.
  4. anything else as it stands: a tcp:// host without TLS material is plain text (upstream does
     not refuse it; the program and the policy pack do). caMaterial alone is ignored.

The stand-in runs the docker CLI, so each case becomes `docker -H HOST` and the CLI's TLS options.
PEM materials are written to files in a private directory (0700, files 0600) that is removed when
the plugin exits; their content is never logged. A provider with none of the connection settings
keeps the stand-in's original path: a plain `docker` that follows the ambient DOCKER_HOST.
"""

from __future__ import annotations

import atexit
import json
import os
import pwd
import shlex
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from toolchain.plugin_server import log
from toolchain.providers.base import UNKNOWN, ProviderError
from toolchain.providers.docker_engine import DEFAULT_ENGINE, Engine

DEFAULT_HOST = "unix:///var/run/docker.sock"
CONNECTION_KEYS = ("host", "context", "sshOpts", "caMaterial", "certMaterial", "keyMaterial", "certPath")
CONFIG_KEYS = frozenset({*CONNECTION_KEYS, "disableDockerDaemonCheck", "registryAuth"})
# The engine's own keys on a provider resource, never provider configuration.
ENGINE_KEYS = frozenset({"version", "pluginDownloadURL", "pluginChecksums"})
# What the docker CLI would read from the environment to pick an engine or TLS: a configured engine
# decides those itself, as upstream's client does (it reads none of them beyond the defaults above).
CLI_ENVIRONMENT = ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")
PREFIX = "medisys-docker-tls-"


def _given(value: Any) -> bool:
    return value is not None and value != "" and value != []


def is_configured(config: dict[str, Any]) -> bool:
    """Whether the provider names its engine (or how to reach it) at all."""
    return any(_given(config.get(key)) for key in CONNECTION_KEYS)


def ssh_opts(value: Any) -> list[str]:
    """sshOpts as a list; the stack's `docker:sshOpts` can arrive as JSON text."""
    if isinstance(value, str):
        value = json.loads(value)
    return [str(item) for item in value or []]


def context_host(name: str, home: str | None = None) -> str:
    """The docker endpoint of the context NAME, as upstream's getContextHost reads it."""
    home = home or pwd.getpwuid(os.getuid()).pw_dir
    directory = Path(home) / ".docker" / "contexts" / "meta"
    try:
        entries = sorted(directory.iterdir())
    except OSError as error:
        raise ValueError(f"could not read contexts directory: {error}") from None
    for entry in entries:
        try:
            meta = json.loads((entry / "meta.json").read_text())
        except (OSError, ValueError):
            continue
        if meta.get("Name") == name and "docker" in (meta.get("Endpoints") or {}):
            return str(meta["Endpoints"]["docker"].get("Host") or "")
    raise ValueError(f"context '{name}' not found")


def settings(config: dict[str, Any], environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The connection settings after upstream's defaults: host, sshOpts, ca, cert, key, certPath."""
    env = os.environ if environ is None else environ

    def value(key: str, variable: str) -> str:
        given = config.get(key)
        return str(given) if _given(given) else env.get(variable, "")

    context = value("context", "DOCKER_CONTEXT")
    if context:
        try:
            host = context_host(context)
        except ValueError as error:
            raise ValueError(f"Error loading Docker context '{context}': {error}") from None
    else:
        host = value("host", "DOCKER_HOST") or DEFAULT_HOST
    opts = ssh_opts(config["sshOpts"]) if _given(config.get("sshOpts")) else env.get("DOCKER_SSH_OPTS", "").split()
    return {"host": host, "sshOpts": opts, "ca": value("caMaterial", "DOCKER_CA_MATERIAL"),
            "cert": value("certMaterial", "DOCKER_CERT_MATERIAL"), "key": value("keyMaterial", "DOCKER_KEY_MATERIAL"),
            "certPath": value("certPath", "DOCKER_CERT_PATH")}


# --- the private directory for PEM files and the ssh wrapper ---------------------------------------

_lock = threading.Lock()
_root: Path | None = None
RUNTIME_DIR: str | None = None  # where the private directory goes; None: /dev/shm when usable, else the temp dir


def _base_directory() -> str:
    if RUNTIME_DIR:
        return RUNTIME_DIR
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else tempfile.gettempdir()


def _sweep(base: str) -> None:
    """Removes what plugins that were killed (SIGKILL: no exit handler ran) left behind."""
    for entry in Path(base).glob(f"{PREFIX}*"):
        try:
            pid = int(entry.name[len(PREFIX):].split("-", 1)[0])
            if entry.stat().st_uid != os.getuid() or pid == os.getpid():
                continue
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(entry, ignore_errors=True)
        except (ValueError, OSError):
            continue


def private_directory() -> Path:
    """A new directory (0700) inside this process's private directory, which goes at exit."""
    global _root
    with _lock:
        if _root is None or not _root.is_dir():
            base = _base_directory()
            _sweep(base)
            _root = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=base))
            atexit.register(remove_private_directory)
        return Path(tempfile.mkdtemp(dir=_root))


def remove_private_directory() -> None:
    global _root
    with _lock:
        if _root is not None:
            shutil.rmtree(_root, ignore_errors=True)
            _root = None


def write_private(directory: Path, name: str, content: str, mode: int = 0o600) -> Path:
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    os.chmod(path, mode)  # whatever the umask took away
    return path


# --- the engine of a provider ------------------------------------------------------------------------


def build_engine(config: dict[str, Any], provider: str = "", environ: dict[str, str] | None = None) -> Engine:
    """The docker CLI options that reach the engine the provider's settings name, as upstream connects."""
    if not is_configured(config):
        return DEFAULT_ENGINE
    label = provider or "docker"
    try:
        found = settings(config, environ)
    except (ValueError, TypeError) as error:
        named = config.get("context") or (environ if environ is not None else os.environ).get("DOCKER_CONTEXT")
        raise ProviderError(f"docker engine (context {named}) (provider {label}): {error}") from None
    host = found["host"]

    def refuse(cause: str) -> ProviderError:
        return ProviderError(f"docker engine {host} (provider {label}): {cause}")

    flags: list[str] = ["-H", host]
    env: dict[str, str] = {}
    if found["cert"] or found["key"]:
        if not (found["cert"] and found["key"]):
            raise refuse("cert_material, and key_material must be specified (set certMaterial and keyMaterial together)")
        if found["certPath"]:
            raise refuse("cert_path must not be specified (certPath, or DOCKER_CERT_PATH in the environment, "
                         "together with certMaterial/keyMaterial)")
        directory = private_directory()
        cert = write_private(directory, "cert.pem", found["cert"])
        key = write_private(directory, "key.pem", found["key"])
        if found["ca"]:
            ca = write_private(directory, "ca.pem", found["ca"])
            flags += ["--tlsverify", "--tlscacert", str(ca), "--tlscert", str(cert), "--tlskey", str(key)]
        else:
            # Upstream skips verifying the server when there is no CA. The CLI still reads a CA file
            # first, whatever the verification: it gets the client certificate, which nothing checks.
            flags += ["--tls", "--tlscacert", str(cert), "--tlscert", str(cert), "--tlskey", str(key)]
        env["DOCKER_CERT_PATH"] = str(directory)
    elif found["certPath"]:
        path = Path(found["certPath"])
        flags += ["--tlsverify", "--tlscacert", str(path / "ca.pem"), "--tlscert", str(path / "cert.pem"),
                  "--tlskey", str(path / "key.pem")]
    elif host.startswith("ssh://") and found["sshOpts"]:
        ssh = shutil.which("ssh")
        if ssh is None:
            raise refuse("no ssh binary on PATH (an ssh:// host needs it)")
        directory = private_directory()
        # The docker CLI starts `ssh` from PATH; this one adds sshOpts before the CLI's own arguments.
        write_private(directory, "ssh", "#!/bin/sh\nexec " + shlex.join([ssh, *found["sshOpts"]]) + ' "$@"\n', 0o700)
        env["PATH"] = f"{directory}{os.pathsep}{os.environ.get('PATH', '')}"
    if found["ca"] and not (found["cert"] or found["key"]):
        log("docker", f"provider {label}: caMaterial without certMaterial/keyMaterial is ignored, as upstream does")
    return Engine(host=host, provider=label, flags=tuple(flags), env=tuple(sorted(env.items())), unset=CLI_ENVIRONMENT)


_engines: dict[str, Engine] = {}


def engine_for(config: dict[str, Any]) -> Engine:
    """The provider's engine (built once per distinct configuration; see base.ProviderConfig for the name)."""
    if not is_configured(config):
        return DEFAULT_ENGINE
    provider = getattr(config, "provider_name", "") or ""
    key = json.dumps([provider, {k: config.get(k) for k in CONNECTION_KEYS}], sort_keys=True, default=str)
    with _lock:
        engine = _engines.get(key)
    if engine is None:
        engine = build_engine(config, provider)
        with _lock:
            engine = _engines.setdefault(key, engine)
    return engine


# --- CheckConfig ---------------------------------------------------------------------------------------


def check_config(urn: str, news: dict[str, Any]) -> list[tuple[str, str]]:
    """What upstream's CheckConfig refuses (unknown keys, wrong types), and what the stand-in cannot do.
    Values not yet known (a preview) pass."""
    name = urn.split("::")[-1] if urn else ""
    default = not name or name.startswith("default")
    failures: list[tuple[str, str]] = []

    def fail(key: str, reason: str) -> None:
        # As the bridge words it; it names no property, so the message carries where to look.
        where = f" Check `pulumi config get docker:{key}`." if default else f" Examine values at '{name}.{key}'."
        failures.append(("", f"could not validate provider configuration: {reason}.{where}"))

    for key, value in sorted(news.items()):
        if key in ENGINE_KEYS or value == UNKNOWN or value is None:
            continue
        if key not in CONFIG_KEYS:
            if default:
                failures.append(("", f"`docker:{key}` is not a valid configuration key for the docker provider. "
                                     "If the key is not intended for the provider, please choose a different namespace from `docker:`."))
            else:
                fail(key, "Invalid or unknown key")
        elif key == "sshOpts":
            try:
                opts = json.loads(value) if isinstance(value, str) else value
            except ValueError:
                opts = None
            if not isinstance(opts, list) or not all(isinstance(o, str) or o == UNKNOWN for o in opts):
                fail(key, "sshOpts: a list of strings is expected")
        elif key == "disableDockerDaemonCheck":
            if not isinstance(value, bool) and str(value).lower() not in ("true", "false"):
                fail(key, "disableDockerDaemonCheck: a boolean is expected")
        elif key == "registryAuth":
            failures.append(("", "the medisys stand-in docker provider does not implement registryAuth (it pulls with the "
                                 "Docker client's own credentials): drop it or use the upstream pulumi-docker plugin"))
        elif not isinstance(value, str):
            fail(key, f"{key}: a string is expected")
    return failures
