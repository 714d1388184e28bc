"""Personal invite links for readers: a random token shown once, only its hash stored, revocable."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update

from study_app.services.actors import Actor, require_coordinator
from study_app.services.database import Database
from study_app.services.errors import NotFound
from study_app.services.events import record_event
from study_app.services.studies import get_study
from study_app.store.models import Invite, Reader, utcnow

SIGNIN_PATH = "/signin"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class IssuedInvite:
    reader_key: str
    role: str
    token: str  # shown once; the database keeps only its hash

    def link(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}{SIGNIN_PATH}?token={self.token}"


def issue_invites(
    db: Database, actor: Actor, study_id: str, reader_keys: list[str] | None = None
) -> list[IssuedInvite]:
    """Issue a fresh personal link for each named reader (default: all); earlier links of theirs are revoked."""
    require_coordinator(actor, "issue invite links")
    issued = []
    with db.transaction() as session:
        study = get_study(session, study_id)
        query = select(Reader).where(Reader.study_id == study_id).order_by(Reader.id)
        readers = list(session.scalars(query))
        if reader_keys is not None:
            known = {r.reader_key: r for r in readers}
            missing = [k for k in reader_keys if k not in known]
            if missing:
                raise NotFound(f"no reader {', '.join(missing)} in study '{study_id}'")
            readers = [known[k] for k in reader_keys]
        now = utcnow()
        valid = timedelta(days=int(study.settings.get("invite_valid_days", 60)))
        for reader in readers:
            session.execute(
                update(Invite)
                .where(Invite.reader_id == reader.id, Invite.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            token = secrets.token_urlsafe(32)
            session.add(Invite(reader_id=reader.id, token_hash=hash_token(token), created_at=now, expires_at=now + valid))
            record_event(
                session, study_id=study_id, actor=actor, kind="invite_issued", reader_id=reader.id,
                payload={"reader": reader.reader_key},
            )
            issued.append(IssuedInvite(reader.reader_key, reader.role, token))
    return issued


def link_state(invite: Invite | None, now=None) -> str:
    """The state of a reader's newest link: ``none``, ``issued`` (not used yet), ``used`` (the reader signed in
    with it), ``expired`` or ``revoked``. The one definition, for the console's readers list and for launch."""
    if invite is None:
        return "none"
    if invite.revoked_at is not None:
        return "revoked"
    if invite.used_at is not None:
        return "used"
    now = now or utcnow()
    expires = invite.expires_at if invite.expires_at.tzinfo is not None else invite.expires_at.replace(tzinfo=now.tzinfo)
    return "expired" if expires <= now else "issued"


def newest_invite(session, reader_id: int) -> Invite | None:
    return session.scalars(select(Invite).where(Invite.reader_id == reader_id).order_by(Invite.id.desc()).limit(1)).first()


def readers_without_usable_link(session, study_id: str) -> list[str]:
    """Reader ids of the study whose newest link is missing, expired or revoked (they cannot sign in yet)."""
    return [r.reader_key for r in session.scalars(select(Reader).where(Reader.study_id == study_id).order_by(Reader.id))
            if link_state(newest_invite(session, r.id)) not in ("issued", "used")]
