"""A cap on the requests in flight in this process that refuses at once instead of queueing."""

from __future__ import annotations

from polyroute.domain.errors import GatewayError


class ConcurrencyGate:
    """`try_enter` admits while fewer than `capacity` are inside; `leave` must follow every admission.

    A capacity of 0 means unlimited. Single-threaded asyncio: no lock is needed.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.inside = 0

    def try_enter(self) -> bool:
        if self.capacity and self.inside >= self.capacity:
            return False
        self.inside += 1
        return True

    def leave(self) -> None:
        self.inside = max(0, self.inside - 1)


class Overloaded(GatewayError):
    """This process is at its in-flight cap: refuse now, the client (or load balancer) retries elsewhere."""

    status = 503
    error_type = "server"

    def __init__(self) -> None:
        super().__init__("The gateway is at capacity; retry shortly", headers={"Retry-After": "1"})
