"""Which datasets accept gateway traffic, and the handshake decision for a request path."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus

from ...model import Contract
from ...topics import raw_topic
from .auth import GroupAuth, Refusal, check_token, group_auth, presented_token
from .frames import parse_ingest_path

__all__ = ["GATEWAY_SOURCE_TYPES", "Route", "RouteTable"]

#: Contract source types the gateway serves (contracts already read ``streaming`` as ``stream``).
GATEWAY_SOURCE_TYPES = ("websocket", "stream")


@dataclass(frozen=True)
class Route:
    """One dataset open to producers: where its records go and how they are keyed."""

    group: str
    dataset: str
    topic: str
    key: tuple[str, ...]
    max_records: int

    @property
    def source(self) -> str:
        """Name in source status reports."""
        return f"gateway:{self.group}.{self.dataset}"


def _max_batch(contract: Contract, limit: int) -> int:
    """The group's ``source_config.max_batch`` when it is a positive whole number below ``limit``."""
    value = contract.source_config.get("max_batch")
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < limit:
        return value
    return limit


class RouteTable:
    """The gateway's view of the loaded contracts; answers handshakes without I/O."""

    def __init__(self, contracts: Iterable[Contract], max_records: int) -> None:
        self.contracts = list(contracts)
        self._groups = {c.group: c for c in self.contracts}
        self._auth: dict[str, GroupAuth] = {}
        self._routes: dict[tuple[str, str], Route] = {}
        for c in self.contracts:
            if c.source_type not in GATEWAY_SOURCE_TYPES:
                continue
            self._auth[c.group] = group_auth(c.group, c.source_config)
            limit = _max_batch(c, max_records)
            for ds in c.datasets:
                self._routes[(c.group, ds.name)] = Route(c.group, ds.name, raw_topic(c.group, ds.name),
                                                         tuple(ds.key), limit)

    @property
    def routes(self) -> list[Route]:
        return list(self._routes.values())

    def problems(self) -> list[str]:
        """Gateway groups whose contract the gateway refuses (logged at start)."""
        return [a.problem for a in self._auth.values() if a.problem is not None]

    def problem_of(self, route: Route) -> str | None:
        """Why the gateway refuses every connection to ``route``, if it does."""
        return self._auth[route.group].problem

    def resolve(self, path: str, authorization: str | None) -> Route | Refusal:
        """The route of an ``/ingest/<group>/<dataset>`` request, or why it is refused.

        The token is checked before the dataset name, so that a producer without the group's
        token learns nothing about its datasets.
        """
        parsed = parse_ingest_path(path)
        if parsed is None:
            return Refusal(HTTPStatus.NOT_FOUND, "no such endpoint: connect to /ingest/<group>/<dataset>")
        contract = self._groups.get(parsed.group)
        if contract is None:
            return Refusal(HTTPStatus.NOT_FOUND, f"unknown group {parsed.group!r}")
        if contract.source_type not in GATEWAY_SOURCE_TYPES:
            return Refusal(HTTPStatus.FORBIDDEN, f"group {parsed.group!r} has source_type "
                                                 f"{contract.source_type!r}: only websocket and stream "
                                                 "groups accept gateway traffic")
        refusal = check_token(parsed.group, self._auth[parsed.group],
                              presented_token(authorization, parsed.param("token")))
        if refusal is not None:
            return refusal
        route = self._routes.get((parsed.group, parsed.dataset))
        if route is None:
            return Refusal(HTTPStatus.NOT_FOUND, f"unknown dataset {parsed.dataset!r} in group {parsed.group!r}")
        return route
