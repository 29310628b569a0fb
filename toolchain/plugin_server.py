"""Serving a Pulumi plugin over gRPC the way the engine expects: listen on a free loopback port,
print that port as the first line on stdout, then serve until the engine kills the process."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from concurrent import futures

import grpc

# The engine sends whole resource graphs through these channels; the defaults (4 MiB) are too small.
MAX_MESSAGE_BYTES = 400 * 1024 * 1024


def serve(register: Callable[[grpc.Server], None]) -> None:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16),
        options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES), ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)],
    )
    register(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    # The engine ends its plugins with SIGINT or SIGTERM: stop quietly, without a traceback.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, lambda *_: server.stop(grace=2))
    server.wait_for_termination()
    sys.exit(0)


def log(name: str, message: str) -> None:
    """Plugins' stderr ends up in the engine's log (and on the console with -v)."""
    print(f"[{name}] {message}", file=sys.stderr, flush=True)
