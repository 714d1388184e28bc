"""Who is acting: the permission checks of every service start from an Actor."""

from __future__ import annotations

from dataclasses import dataclass

from study_app.services.errors import PermissionDenied


@dataclass(frozen=True)
class Actor:
    """The acting principal.

    ``kind`` is ``"system"`` (the local CLI, trusted like a coordinator), ``"coordinator"``
    (signed in to the console) or ``"reader"`` (signed in by invite; ``reader_id`` set).
    """

    kind: str
    name: str
    reader_id: int | None = None
    coordinator_id: int | None = None

    @property
    def is_coordinator(self) -> bool:
        return self.kind in ("system", "coordinator")

    def audit_name(self) -> str:
        return f"{self.kind}:{self.name}"


SYSTEM = Actor(kind="system", name="cli")


def reader_actor(reader_id: int, reader_key: str = "") -> Actor:
    return Actor(kind="reader", name=reader_key or str(reader_id), reader_id=reader_id)


def require_coordinator(actor: Actor, action: str) -> None:
    if not actor.is_coordinator:
        raise PermissionDenied(f"only a coordinator may {action}")
