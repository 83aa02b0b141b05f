"""Wrappers that go behind the poller's client seam (``SnmpPoller(client_factory=...)``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from probes.snmp import SnmpSettings
from probes.snmp_client import ClientFactory, SnmpClient, Value, open_client


class WalkCounter:
    """Counts column walks in flight at once across every client it made (``peak``)."""

    def __init__(self, inner: ClientFactory = open_client) -> None:
        self.inner = inner
        self.in_flight = self.peak = self.walks = 0

    async def __call__(self, address: str, settings: SnmpSettings) -> SnmpClient:
        return CountingClient(await self.inner(address, settings), self)


class CountingClient:
    def __init__(self, client: SnmpClient, counter: WalkCounter) -> None:
        self.client, self.counter = client, counter
        self.stats = client.stats
        self.engine_id: bytes | None = None

    async def open(self, engine_id: bytes | None = None) -> None:
        await self.client.open(engine_id)
        self.engine_id = self.client.engine_id

    async def get(self, oids: Sequence[str]) -> dict[str, Value]:
        return await self.client.get(oids)

    async def walk(self, oid: str) -> AsyncIterator[tuple[str, Value]]:
        counter = self.counter
        counter.walks += 1
        counter.in_flight += 1
        counter.peak = max(counter.peak, counter.in_flight)
        try:
            async for item in self.client.walk(oid):
                yield item
        finally:
            counter.in_flight -= 1
