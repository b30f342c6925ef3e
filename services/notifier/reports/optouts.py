"""What we do when a provider says a recipient opted out there: one function for every path.

Twilio's 21610 means the handset replied STOP to our sender, so Twilio refuses every message
from that sender to that number, whoever it is for. The opt-out therefore belongs to the
phone number, exactly like a STOP keyword we receive ourselves: the address goes on the
opt-out list and every directory entry with that number is opted out of SMS, whichever path
told us (the send's answer or a status callback). START from that phone undoes both.
What the code *means* lives in `clients.errors`; this module is what we *do* about it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from schemas.notifications import Channel
from services.notifier import directory, flows


def apply_provider_error(
    *, session: Session, channel: Channel, code: str | None, address: str | None, now: datetime
) -> bool:
    """Record the opt-out a provider error reports, if it reports one; whether it did."""
    if not address or not flows.opts_out(channel, code):
        return False
    directory.set_phone_opt_out(
        session=session, phone=address, opted_out=True, now=now, source=f"twilio-{code}"
    )
    return True
