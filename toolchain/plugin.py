"""Entry point of the project's Pulumi plugins (README.md, "The Pulumi toolchain"):

    python toolchain/plugin.py language-host VERSION --exec-shim=PATH ENGINE_ADDRESS
    python toolchain/plugin.py resource NAME VERSION ENGINE_ADDRESS

scripts/lib/toolchain.sh writes the `pulumi-language-python` and `pulumi-resource-<name>`
executables that call this, beside the CLI and in the project's Pulumi home.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def provider(name: str, version: str):
    from toolchain.providers.base import Provider

    if name == "docker":
        from toolchain.providers.docker import docker_types
        from toolchain.providers.docker_host import check_config

        # Each resource's commands go to the engine its provider's configuration names (docker:host and
        # the rest in the stack config, or an explicit docker.Provider's arguments): docker_host.py.
        return Provider(name, version, docker_types(), check_config=check_config)
    if name == "postgresql":
        from toolchain.providers.postgresql import postgresql_types

        return Provider(name, version, postgresql_types())
    if name in ("random", "tls"):
        from toolchain.providers import keys

        return Provider(name, version, keys.random_types() if name == "random" else keys.tls_types())
    raise SystemExit(f"no stand-in provider named {name}")


def main() -> None:
    from pulumi.runtime.proto import provider_pb2_grpc

    from toolchain.plugin_server import serve

    if sys.argv[1] == "language-host":
        from toolchain.language_host import main as language_host

        language_host(sys.argv[2], sys.argv[3:])
        return
    name, version = sys.argv[2:4]
    instance = provider(name, version)
    serve(lambda server: provider_pb2_grpc.add_ResourceProviderServicer_to_server(instance, server))


if __name__ == "__main__":
    main()
