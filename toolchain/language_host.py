"""The project's Python language host for the Pulumi CLI (`pulumi-language-python`).

Pulumi's own host lives in a Go module that the workplace's module proxy refuses, so the CLI
built by scripts/lib/toolchain.sh is paired with this one. It does what the engine asks of a
language host for this project: run the program through Pulumi's `pulumi-language-python-exec`
shim (shipped in the pulumi/sdk/v3 Go module, copied beside this host by toolchain.sh) inside the
virtualenv that Pulumi.yaml names, install that virtualenv's dependencies, and run Python policy
packs (`--policy-pack`) as analyzer plugins. Code generation, templates and packing are not
offered: the engine only calls them from `pulumi new`, `pulumi convert` and `pulumi package`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from queue import Queue

import grpc
from google.protobuf import empty_pb2
from pulumi.runtime.proto import language_pb2, language_pb2_grpc, plugin_pb2

from toolchain.plugin_server import log, serve

# pulumi-language-python-exec exits with this code once it has reported a user-facing error.
EXITED_AFTER_REPORTING = 32


def virtualenv_python(info: language_pb2.ProgramInfo) -> str:
    """The interpreter of the virtualenv named by the runtime options (relative to Pulumi.yaml)."""
    options = dict(info.options.items()) if info.HasField("options") else {}
    venv = options.get("virtualenv")
    if not venv:
        return os.environ.get("PULUMI_PYTHON_CMD", "python3")
    root = Path(info.root_directory or info.program_directory or ".")
    return str((root / venv).resolve() / "bin" / "python")


def stream(command: list[str], cwd: str, env: dict[str, str], make_response):
    """Runs `command`, yielding its stdout and stderr chunks as responses; returns the exit code."""
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    chunks: Queue = Queue()

    def pump(pipe, field: str) -> None:
        for chunk in iter(lambda: pipe.read1(65536), b""):
            chunks.put((field, chunk))
        chunks.put((field, None))

    for pipe, field in ((process.stdout, "stdout"), (process.stderr, "stderr")):
        threading.Thread(target=pump, args=(pipe, field), daemon=True).start()
    open_pipes = 2
    while open_pipes:
        field, chunk = chunks.get()
        if chunk is None:
            open_pipes -= 1
        else:
            yield make_response(**{field: chunk})
    return process.wait()


class LanguageHost(language_pb2_grpc.LanguageRuntimeServicer):
    def __init__(self, version: str, engine_address: str, exec_shim: str) -> None:
        self.version = version
        self.engine_address = engine_address
        self.exec_shim = exec_shim

    def Handshake(self, request, context):
        return language_pb2.LanguageHandshakeResponse()

    def GetPluginInfo(self, request, context):
        return plugin_pb2.PluginInfo(version=self.version)

    def GetRequiredPlugins(self, request, context):
        # The engine loads each provider when the program first registers one of its resources.
        return language_pb2.GetRequiredPluginsResponse()

    def GetRequiredPackages(self, request, context):
        return language_pb2.GetRequiredPackagesResponse()

    def RuntimeOptionsPrompts(self, request, context):
        return language_pb2.RuntimeOptionsResponse()

    def About(self, request, context):
        python = virtualenv_python(request.info)
        version = subprocess.run([python, "--version"], capture_output=True, text=True).stdout.strip()
        return language_pb2.AboutResponse(executable=python, version=version.removeprefix("Python "))

    def GetProgramDependencies(self, request, context):
        python = virtualenv_python(request.info)
        listing = subprocess.run([python, "-m", "pip", "list", "--format", "json"], capture_output=True, text=True)
        packages = json.loads(listing.stdout or "[]")
        return language_pb2.GetProgramDependenciesResponse(
            dependencies=[language_pb2.DependencyInfo(name=p["name"], version=p["version"]) for p in packages]
        )

    def InstallDependencies(self, request, context):
        yield from self._install(request.info, request.info.root_directory or request.directory, context,
                                 language_pb2.InstallDependenciesResponse)

    def _install(self, info, root: str, context, make_response):
        """Creates the virtualenv from requirements.txt when it is missing."""
        python = virtualenv_python(info)
        if Path(python).exists():
            return
        venv = Path(python).parent.parent
        steps = [[sys.executable, "-m", "venv", str(venv)]]
        requirements = Path(root) / "requirements.txt"
        if requirements.exists():
            steps.append([python, "-m", "pip", "install", "--disable-pip-version-check", "-r", str(requirements)])
        for command in steps:
            code = yield from stream(command, root, dict(os.environ), make_response)
            if code != 0:
                context.abort(grpc.StatusCode.UNKNOWN, f"`{' '.join(command)}` exited {code}")

    def Run(self, request, context):
        python = virtualenv_python(request.info)
        args = [python, "-u", self.exec_shim, "--monitor", request.monitor_address, "--engine", self.engine_address,
                "--project", request.project, "--stack", request.stack, "--pwd", request.pwd,
                "--dry_run", str(request.dryRun).lower(), "--parallel", str(request.parallel)]
        if request.organization:
            args += ["--organization", request.organization]
        if request.info.root_directory:
            args += ["--root_directory", request.info.root_directory]
        args += [request.program or ".", *request.args]
        env = dict(os.environ)
        env["PULUMI_CONFIG"] = json.dumps(dict(request.config.items()))
        env["PULUMI_CONFIG_SECRET_KEYS"] = json.dumps(list(request.configSecretKeys))
        if not Path(python).exists():
            return language_pb2.RunResponse(error=f"the program's virtualenv is missing ({python}): run `make bootstrap`")
        # The program's own output goes to ours, which the engine shows as the program's.
        code = subprocess.run(args, cwd=request.pwd or None, env=env).returncode
        if code == 0:
            return language_pb2.RunResponse()
        if code == EXITED_AFTER_REPORTING:
            return language_pb2.RunResponse(bail=True)
        return language_pb2.RunResponse(error=f"Program exited with non-zero exit code: {code}")

    def RunPlugin(self, request, context):
        """Policy packs: `python -u <pack directory> <engine address>` in the pack's own virtualenv."""
        python = virtualenv_python(request.info)
        program = request.info.program_directory or request.pwd
        # The engine does not install a local policy pack's dependencies: do it on first use.
        yield from self._install(request.info, request.info.root_directory or program, context,
                                 lambda **chunk: language_pb2.RunPluginResponse(stderr=chunk.get("stdout", b"") + chunk.get("stderr", b"")))
        env = dict(os.environ)
        env.update(item.split("=", 1) for item in request.env if "=" in item)
        code = yield from stream([python, "-u", program, *request.args], request.pwd or program, env,
                                 language_pb2.RunPluginResponse)
        yield language_pb2.RunPluginResponse(exitcode=code)

    def Cancel(self, request, context):
        return empty_pb2.Empty()


def main(version: str, arguments: list[str]) -> None:
    """Arguments: --exec-shim=PATH (written by toolchain.sh), any flags of the engine, ENGINE_ADDRESS.
    `version` is the CLI's, which this host stands beside."""
    shims = [a.split("=", 1)[1] for a in arguments if a.startswith("--exec-shim=")]
    positional = [a for a in arguments if not a.startswith("-")]
    if not shims or not Path(shims[0]).exists():
        log("pulumi-language-python", f"pulumi-language-python-exec not found ({shims}): run scripts/bootstrap")
        sys.exit(1)
    host = LanguageHost(version, positional[-1] if positional else "", shims[0])
    serve(lambda server: language_pb2_grpc.add_LanguageRuntimeServicer_to_server(host, server))
