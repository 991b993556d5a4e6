"""Edits and recalls as the producer asks for them: checked, recorded, announced.

An edit is a whole new message (content, type and parts, checked as a send checks them); a
personal broadcast's edit is a template filled in with each delivery's variables, every one
checked before anything is written. A recall first cancels what of the broadcast was not
sent yet, then soft-deletes what was. Either is recorded in the ledger with a row per
delivery (threadcast/ledger/changes.py) and announced to the gate, whose dispatcher hands it
to a worker (worker/changes.py). Asking for the same edit, or the recall, again returns the
change already made, and sends its failed and unknown deliveries again.
"""

from __future__ import annotations

from datetime import datetime

from threadcast.contract import ContentType, check_content
from threadcast.dispatch.changes import ChangeGate
from threadcast.errors import ValidationError
from threadcast.ledger import Ledger
from threadcast.ledger.changes import ChangeKind, Made, NewChange
from threadcast.message import MessageParts
from threadcast.personal import Filling, compiled
from threadcast.settings import Settings


def require_enabled(settings: Settings) -> None:
    """Edits and recalls need ChannelMessage.ReadWrite, asked for at login only when on."""
    if not settings.changes:
        raise ValidationError(
            "THREADCAST_CHANGES",
            False,
            "is off: editing or recalling sent messages needs the ChannelMessage.ReadWrite "
            "permission; set THREADCAST_CHANGES=true, then run threadcast login for each tenant",
        )


def edit(
    ledger: Ledger,
    gate: ChangeGate,
    broadcast_id: str,
    content: str,
    content_type: ContentType,
    parts: MessageParts,
    source: str,
    now: datetime,
) -> Made:
    """Record the edit (the broadcast's messages become this one) and announce it."""
    check_content(content)
    html = content_type is ContentType.HTML
    if parts.beyond_body:
        parts.check(content, html)
    info = ledger.broadcasts.info(broadcast_id)  # NotFoundError for an unknown id
    if info.personal:
        templates = [compiled("content", content, html)]
        if parts.subject is not None:
            templates.append(compiled("subject", parts.subject, False))
        filling = Filling(templates, parts, html=html)
        for seq, variables in ledger.changes.variables(broadcast_id):
            filling.check(f"targets[{seq}]", variables)
    change = NewChange(ChangeKind.EDIT, source, content, content_type, parts, info.personal)
    return _record(ledger, gate, broadcast_id, change, now)


def recall(ledger: Ledger, gate: ChangeGate, broadcast_id: str, source: str, now: datetime) -> Made:
    """Record the recall and announce it (the caller cancelled what was not sent first)."""
    return _record(ledger, gate, broadcast_id, NewChange(ChangeKind.RECALL, source), now)


def _record(
    ledger: Ledger, gate: ChangeGate, broadcast_id: str, change: NewChange, now: datetime
) -> Made:
    made = ledger.changes.create(broadcast_id, change, now)
    # Announced even when it was made before: a change Redis lost runs again (the gate
    # hands out a change once; its runner's lease keeps a second one from running it).
    gate.announce(made.change.id)
    return made
