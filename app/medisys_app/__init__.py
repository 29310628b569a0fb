"""Reference application for the medisys platform.

A small HTTP service that exercises the whole chain behind the load balancer:
HAProxy -> app -> PostgreSQL (primary + streaming replicas) -> Redis cluster.
"""

__version__ = "1.0.0"
