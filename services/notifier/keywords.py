"""SMS keywords a citizen may send back, and our answers (pure; TwiML rendering included)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from twilio.twiml.messaging_response import MessagingResponse


class Action(StrEnum):
    OPT_OUT = "opt-out"
    OPT_IN = "opt-in"
    HELP = "help"


# keyword → (action, language of the answer). Twilio itself answers its standard English
# opt-out/opt-in keywords (and refuses any message to a number right after STOP), so we answer
# those with an empty TwiML; Spanish ones and every help request get our own short text.
KEYWORDS: dict[str, tuple[Action, str]] = {
    "STOP": (Action.OPT_OUT, "en"),
    "STOPALL": (Action.OPT_OUT, "en"),
    "UNSUBSCRIBE": (Action.OPT_OUT, "en"),
    "CANCEL": (Action.OPT_OUT, "en"),
    "END": (Action.OPT_OUT, "en"),
    "QUIT": (Action.OPT_OUT, "en"),
    "BAJA": (Action.OPT_OUT, "es"),
    "CANCELAR": (Action.OPT_OUT, "es"),
    "START": (Action.OPT_IN, "en"),
    "UNSTOP": (Action.OPT_IN, "en"),
    "ALTA": (Action.OPT_IN, "es"),
    "HELP": (Action.HELP, "en"),
    "INFO": (Action.HELP, "en"),
    "AYUDA": (Action.HELP, "es"),
}
_TWILIO_ANSWERS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "START", "UNSTOP"}
)

ANSWERS: dict[tuple[Action, str], str] = {
    (Action.OPT_OUT, "es"): "Avisa: no recibirás más SMS. Envía ALTA para volver a recibirlos.",
    (Action.OPT_IN, "es"): "Avisa: vuelves a recibir SMS. Envía BAJA para dejar de recibirlos.",
    (Action.HELP, "es"): (
        "Avisa: avisos de servicios públicos. Envía BAJA para no recibir más SMS, "
        "ALTA para volver a recibirlos."
    ),
    (Action.HELP, "en"): (
        "Avisa: public service reminders. Reply STOP to stop these texts, START to get them again."
    ),
}


_EDGES = ".,;:!¡?¿\"' \t\r\n\u00a0"


@dataclass(frozen=True, slots=True)
class Keyword:
    """What an inbound SMS asks for, and the text to answer (None: answer nothing)."""

    action: Action
    answer: str | None


def _bare(body: str) -> str:
    """The message as one upper-case word: surrounding whitespace and punctuation dropped,
    accents stripped (phones add them: "Bajá", "ÁLTA")."""
    word = body.strip().strip(_EDGES).upper()
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def classify(body: str) -> Keyword | None:
    """The keyword in an inbound SMS (the whole message, any case or accents, surrounding
    whitespace and punctuation ignored), or None when it is not one."""
    word = _bare(body)
    found = KEYWORDS.get(word)
    if found is None:
        return None
    action, language = found
    answer = None if word in _TWILIO_ANSWERS else ANSWERS.get((action, language))
    return Keyword(action, answer)


def twiml(answer: str | None) -> str:
    """A TwiML messaging response: one message, or none."""
    response = MessagingResponse()
    if answer:
        response.message(answer)
    return str(response)
