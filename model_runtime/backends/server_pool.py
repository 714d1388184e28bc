"""Several vLLM servers as one backend: requests spread by load, each server capped, a dead server failed over."""

from __future__ import annotations

import asyncio
import time

from model_runtime.backends.base import BackendUnavailable, DraftingError, DraftRequest, DraftResult

# A server that failed a request (connection refused, 5xx) is left out this long before it is tried again.
COOLDOWN_S = 5.0


class ServerPool:
    """Spread a batch over several OpenAI-compatible servers (vLLM replicas of one model and revision).

    Parameters
    ----------
    members : list of VLLMServerBackend
        One backend per server, each with its own cap on requests in flight (``max_in_flight``); all must
        serve the same model under the same name and revision (a draft records the server version that made
        it, so replicas at different vLLM versions are visible in the provenance).
    cooldown_s : float
        How long a server that failed is left out before it is tried again.
    ready_timeout_s : float
        How long :meth:`ensure_ready` waits for the first healthy server. Members should have a short
        readiness wait of their own (a few seconds), so a dead server fails over fast.

    Notes
    -----
    Each request goes to the live server with the fewest requests in flight relative to its cap (so faster
    servers take more). A transient failure (connection refused, timeout, 5xx) marks that server down for
    ``cooldown_s`` and sends the request to another one; after every server has failed it, the request fails
    like a single server's would. A request a server refuses (4xx) fails at once: another server would refuse
    it too. Readiness needs one healthy server serving the model; a server that serves another model, or
    none, is a configuration error and stops the batch before any request.
    """

    name = "vllm-server"

    def __init__(self, members: list, *, cooldown_s: float = COOLDOWN_S, ready_timeout_s: float = 600.0) -> None:
        if not members:
            raise ValueError("a server pool needs at least one server")
        revisions = {(m.model_id, m.model_revision, m.served_model_name) for m in members}
        if len(revisions) > 1:
            raise ValueError(f"the servers of one pool must run one model and revision, got {sorted(revisions)}")
        self.members = list(members)
        self.model_id = members[0].model_id
        self.model_revision = members[0].model_revision
        self.served_model_name = members[0].served_model_name
        self.cooldown_s = cooldown_s
        self.ready_timeout_s = ready_timeout_s
        self.max_in_flight = sum(m.max_in_flight for m in members)
        self.in_flight = [0] * len(members)
        self.down_until = [0.0] * len(members)
        self.served = [0] * len(members)  # requests answered per server, for reports and tests

    @property
    def root_urls(self) -> list[str]:
        return [m.root_url for m in self.members]

    async def ensure_ready(self) -> None:
        """Check every server at once, until at least one is healthy and serves the model (or the deadline)."""
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            outcomes = await asyncio.gather(*(m.ensure_ready() for m in self.members), return_exceptions=True)
            healthy = 0
            for index, outcome in enumerate(outcomes):
                if outcome is None:
                    healthy += 1
                elif isinstance(outcome, BackendUnavailable) and getattr(outcome, "transient", False):
                    self.down_until[index] = time.monotonic() + self.cooldown_s  # not up yet: try it later
                elif isinstance(outcome, BaseException):
                    raise outcome  # wrong model name, no models: a mistake to fix, not a server to skip
            if healthy:
                return
            if time.monotonic() >= deadline:
                raise BackendUnavailable(
                    f"none of the {len(self.members)} vLLM servers became healthy within {self.ready_timeout_s:.0f} s: "
                    + "; ".join(str(o) for o in outcomes if isinstance(o, BaseException)), transient=True)
            await asyncio.sleep(1.0)

    def _choose(self, tried: set[int]) -> int | None:
        now = time.monotonic()
        live = [i for i in range(len(self.members)) if i not in tried and self.down_until[i] <= now]
        if not live:
            live = [i for i in range(len(self.members)) if i not in tried]  # all cooling down: try one anyway
        if not live:
            return None
        return min(live, key=lambda i: (self.in_flight[i] / self.members[i].max_in_flight, self.in_flight[i]))

    async def generate(self, request: DraftRequest) -> list[DraftResult]:
        """Send the request to the least loaded live server; on a transient failure, to the next one."""
        tried: set[int] = set()
        last: DraftingError | None = None
        while (index := self._choose(tried)) is not None:
            tried.add(index)
            self.in_flight[index] += 1
            try:
                results = await self.members[index].generate(request)
            except DraftingError as error:
                last = error
                if not error.transient:
                    raise
                self.down_until[index] = time.monotonic() + self.cooldown_s
                continue
            finally:
                self.in_flight[index] -= 1
            self.served[index] += 1
            return results
        assert last is not None
        raise DraftingError(f"{last} (every one of {len(self.members)} servers failed it)",
                            transient=True, attempts=getattr(last, "attempts", 1))

    async def aclose(self) -> None:
        for member in self.members:
            await member.aclose()
