"""The GPU inventory: a fixed number of GPUs, granted to deployments and training jobs in FIFO order.

Strict FIFO: a request that does not fit blocks the ones behind it, so a large request (a 4-GPU
judge) is never starved by a stream of small ones.
"""

from __future__ import annotations

from flywheel_nmp_emulator.state.records import GpuLedger, GpuRequest


class GpuInventory:
    def __init__(self, total: int, ledger: GpuLedger) -> None:
        self.total = total
        self.ledger = ledger

    @property
    def used(self) -> int:
        return sum(self.ledger.holders.values())

    @property
    def free(self) -> int:
        return max(self.total - self.used, 0)

    def holds(self, holder: str) -> bool:
        return holder in self.ledger.holders

    def request(self, holder: str, gpus: int, now: float) -> None:
        """Queue a request (idempotent: a holder or a queued holder is not queued twice)."""
        if self.holds(holder) or any(r.holder == holder for r in self.ledger.queue):
            return
        self.ledger.queue.append(GpuRequest(holder=holder, gpus=gpus, since=now))

    def release(self, holder: str) -> bool:
        """Give back a holder's GPUs or drop its queued request. True if anything changed."""
        before = len(self.ledger.queue)
        self.ledger.queue = [r for r in self.ledger.queue if r.holder != holder]
        return self.ledger.holders.pop(holder, None) is not None or len(self.ledger.queue) != before

    def grant(self) -> list[str]:
        """Grant queued requests from the head while they fit; return the newly granted holders."""
        granted: list[str] = []
        while self.ledger.queue and self.ledger.queue[0].gpus <= self.free:
            head = self.ledger.queue.pop(0)
            self.ledger.holders[head.holder] = head.gpus
            granted.append(head.holder)
        return granted

    def waiting_message(self, holder: str) -> str:
        """Why a queued holder is still waiting, in words an operator understands."""
        for position, req in enumerate(self.ledger.queue):
            if req.holder == holder:
                if req.gpus > self.total:
                    return (
                        f"waiting for GPUs: needs {req.gpus} GPU(s) but the cluster has only "
                        f"{self.total}"
                    )
                ahead = f", {position} request(s) ahead in the queue" if position else ""
                return (
                    f"waiting for GPUs: needs {req.gpus} GPU(s), {self.free} of {self.total} "
                    f"free{ahead}"
                )
        return ""

    def snapshot(self) -> dict[str, object]:
        return {
            "total": self.total,
            "used": self.used,
            "free": self.free,
            "holders": dict(self.ledger.holders),
            "queue": [r.model_dump() for r in self.ledger.queue],
        }
