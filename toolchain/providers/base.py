"""The gRPC side of a resource provider plugin, shared by the project's stand-in providers.

A stand-in implements, for the resource types this program uses, the same type tokens and
property names as the upstream provider, so the pinned Python SDKs (pulumi-docker, pulumi-random,
pulumi-tls, pulumi-postgresql) drive it unchanged. Each resource type is a `ResourceType`: how to
check, create, update, read and delete it, and which property changes force a replacement.

Secrets: the provider says it does not accept them, so the engine hands it plain values and
re-marks as secret every output whose input was secret (and the SDKs' additional secret outputs,
such as RandomPassword.result and PrivateKey.privateKeyPem).
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import plugin_pb2, provider_pb2, provider_pb2_grpc

from toolchain.plugin_server import log

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the wire value of a not-yet-known property
SIGNATURE = "4dabf18193072939515e22adb298388d"  # the key that marks a secret (or other special) object


class ProviderError(Exception):
    """A failure to report to the user as is (no traceback): what went wrong and what to do."""


def to_dict(struct: struct_pb2.Struct | None) -> dict[str, Any]:
    if struct is None:
        return {}
    return _integral(json_format.MessageToDict(struct))


def _integral(value: Any) -> Any:
    # Struct numbers are doubles; ports, sizes and counts are integers to every consumer here.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        if SIGNATURE in value:
            # Provider configuration reaches Configure with its secrets still wrapped.
            return _integral(value.get("value"))
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def to_struct(values: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(json.loads(json.dumps(values, default=str)))
    return struct


def old_inputs(request: provider_pb2.DiffRequest) -> dict[str, Any]:
    """The inputs the resource was last deployed with (older engines send only its outputs)."""
    return to_dict(request.old_inputs) if request.HasField("old_inputs") else to_dict(request.olds)


def changed_keys(olds: dict[str, Any], news: dict[str, Any], ignored: frozenset[str] | set[str] = frozenset()) -> list[str]:
    return sorted(k for k in set(olds) | set(news) if k not in ignored and olds.get(k) != news.get(k))


class ResourceType:
    """One resource type. Defaults: every input change replaces; outputs are the inputs."""

    token = ""
    # Inputs that an update changes in place; a change to any other input replaces the resource.
    updatable: frozenset[str] = frozenset()

    def check(self, inputs: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        return inputs, []

    def create(self, inputs: dict[str, Any], config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def preview_outputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Outputs during a preview: the inputs, and computed properties unknown."""
        return dict(inputs)

    def update(self, resource_id: str, olds: dict[str, Any], news: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        return {**olds, **news}

    def read(self, resource_id: str, state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any] | None:
        """The live state (the recorded outputs with what was read in place), or None when the
        resource is gone. Default: trust the recorded state."""
        return state

    def delete(self, resource_id: str, state: dict[str, Any], config: dict[str, Any]) -> None:
        pass


class ProviderConfig(dict):
    """The provider's configuration (Configure's arguments), and the name of the provider resource it
    came from (`default_5_2_0` for a default provider), for messages that say which provider failed."""

    provider_name = ""


def _type_of(urn: str) -> str:
    # urn:pulumi:<stack>::<project>::<parent types$>type::<name>
    return urn.split("::")[2].split("$")[-1]


class Provider(provider_pb2_grpc.ResourceProviderServicer):
    def __init__(self, name: str, version: str, types: list[ResourceType], on_configure=None, check_config=None) -> None:
        self.name = name
        self.version = version
        self.types = {t.token: t for t in types}
        self.config: dict[str, Any] = ProviderConfig()
        self.on_configure = on_configure or (lambda config: None)
        # check_config(urn, news) -> [(property, reason)]: what the provider's CheckConfig refuses.
        self.check_config: Callable[[str, dict[str, Any]], list[tuple[str, str]]] = check_config or (lambda urn, news: [])

    def _resource_type(self, urn: str, context: grpc.ServicerContext) -> ResourceType:
        token = _type_of(urn)
        if token not in self.types:
            context.abort(grpc.StatusCode.UNIMPLEMENTED,
                          f"the medisys stand-in {self.name} provider does not implement {token}; "
                          f"it covers {', '.join(sorted(self.types))}")
        return self.types[token]

    def _guard(self, context: grpc.ServicerContext, action: str, call):
        try:
            return call()
        except ProviderError as error:
            context.abort(grpc.StatusCode.UNKNOWN, str(error))
        except Exception as error:  # reported, with the traceback in the engine log
            log(self.name, f"{action} failed:\n{traceback.format_exc()}")
            context.abort(grpc.StatusCode.UNKNOWN, f"{action}: {error}")

    # plugin and provider configuration

    def Handshake(self, request, context):
        return provider_pb2.ProviderHandshakeResponse(accept_secrets=False, accept_resources=False)

    def GetPluginInfo(self, request, context):
        return plugin_pb2.PluginInfo(version=self.version)

    def GetSchema(self, request, context):
        return provider_pb2.GetSchemaResponse(schema="{}")

    def CheckConfig(self, request, context):
        # The inputs go back as they came (secret wrappers included); only failures are added.
        failures = self._guard(context, "checking the provider configuration",
                               lambda: self.check_config(request.urn, to_dict(request.news)))
        return provider_pb2.CheckResponse(
            inputs=request.news, failures=[provider_pb2.CheckFailure(property=p, reason=r) for p, r in failures]
        )

    def DiffConfig(self, request, context):
        # As pulumi-terraform-bridge's DiffConfig (pkg/tfbridge/provider.go, configDiffer): a changed key is
        # an update of the provider, a replacement only for keys marked ForcesProviderReplace, and
        # pulumi-docker marks none. So a new docker `host` updates the provider in place, and the engine
        # (step_generator providerChanged, v3.276) replaces none of the resources on it.
        changed = changed_keys(old_inputs(request), to_dict(request.news))
        return provider_pb2.DiffResponse(
            changes=provider_pb2.DiffResponse.DIFF_SOME if changed else provider_pb2.DiffResponse.DIFF_NONE, diffs=changed
        )

    def Configure(self, request, context):
        config = ProviderConfig({k.rsplit(":", 1)[-1]: v for k, v in request.variables.items()})
        config.update(to_dict(request.args))
        config.provider_name = request.name or (request.urn.split("::")[-1] if request.urn else "")
        self.config = config
        self.on_configure(self.config)
        return provider_pb2.ConfigureResponse(acceptSecrets=False, supportsPreview=True)

    def Cancel(self, request, context):
        return empty_pb2.Empty()

    # resources

    def Check(self, request, context):
        kind = self._resource_type(request.urn, context)
        inputs, failures = self._guard(context, "check", lambda: kind.check(to_dict(request.news)))
        return provider_pb2.CheckResponse(
            inputs=to_struct(inputs), failures=[provider_pb2.CheckFailure(property=p, reason=r) for p, r in failures]
        )

    def Diff(self, request, context):
        kind = self._resource_type(request.urn, context)
        news = to_dict(request.news)
        ignored = {path.split(".")[0].split("[")[0] for path in request.ignoreChanges}
        changed = changed_keys(old_inputs(request), news, ignored)
        replaces = [k for k in changed if k not in kind.updatable]
        return provider_pb2.DiffResponse(
            changes=provider_pb2.DiffResponse.DIFF_SOME if changed else provider_pb2.DiffResponse.DIFF_NONE,
            diffs=changed,
            replaces=replaces,
            stables=[k for k in news if k not in changed],
        )

    def Create(self, request, context):
        kind = self._resource_type(request.urn, context)
        inputs = to_dict(request.properties)
        if request.preview:
            return provider_pb2.CreateResponse(id="", properties=to_struct(kind.preview_outputs(inputs)))
        resource_id, outputs = self._guard(context, f"creating {request.urn.split('::')[-1]}", lambda: kind.create(inputs, self.config))
        return provider_pb2.CreateResponse(id=resource_id, properties=to_struct(outputs))

    def Update(self, request, context):
        kind = self._resource_type(request.urn, context)
        olds, news = to_dict(request.olds), to_dict(request.news)
        if request.preview:
            return provider_pb2.UpdateResponse(properties=to_struct({**olds, **kind.preview_outputs(news)}))
        outputs = self._guard(context, f"updating {request.urn.split('::')[-1]}",
                              lambda: kind.update(request.id, olds, news, self.config))
        return provider_pb2.UpdateResponse(properties=to_struct(outputs))

    def Read(self, request, context):
        kind = self._resource_type(request.urn, context)
        state = to_dict(request.properties)
        live = self._guard(context, f"reading {request.urn.split('::')[-1]}", lambda: kind.read(request.id, state, self.config))
        if live is None:
            return provider_pb2.ReadResponse(id="")
        # As the bridged upstream providers do: each recorded input takes the value just read, so
        # `pulumi preview --refresh` diffs the program against the live object.
        inputs = {k: live.get(k, v) for k, v in to_dict(request.inputs).items()}
        return provider_pb2.ReadResponse(id=request.id, properties=to_struct(live), inputs=to_struct(inputs))

    def Delete(self, request, context):
        kind = self._resource_type(request.urn, context)
        self._guard(context, f"deleting {request.urn.split('::')[-1]}",
                    lambda: kind.delete(request.id, to_dict(request.properties), self.config))
        return empty_pb2.Empty()
