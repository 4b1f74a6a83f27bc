"""Conversations with the support agent, turn by turn.

Conversations of several turns interleave as they do in production, a few customers ask for two
things at once, and some requests come again verbatim (client retries) or nearly verbatim. A turn
carries its messages already encoded as JSON: a turn is logged more than once (retries, later turns
repeat the history) and encoding is most of the cost of a record.
"""

import datetime as dt
import json
from collections import deque
from dataclasses import dataclass, field
from json.encoder import encode_basestring as quote
from random import Random
from typing import Final, NamedTuple

from flywheel_contracts.traffic import chat, vocab
from flywheel_contracts.traffic.intents import BUILDERS, Context, Intent
from flywheel_contracts.traffic.sampling import Weighted
from flywheel_contracts.traffic.workloads import ROUTER, TOOL_WEIGHTS, Workload

# Shares of the traffic, tuned by eye against what support logs look like.
_P_REPEAT: Final = 0.02  # same request again: a client retry
_P_NEAR_DUPLICATE: Final = 0.03  # same request with different case, punctuation or spacing
_P_FOLLOW_UP: Final = 0.2  # next turn of an open conversation
_P_PARALLEL: Final = 0.06  # router only: two requests in one message, two tool calls
_P_SMALL_TALK: Final = 0.03  # router only: nothing to call a tool for
_P_END: Final = 0.35  # a conversation ends after any turn
_MAX_TURNS: Final = 4
_MAX_OPEN: Final = 32
_RECENT: Final = 64

_OPENERS: Final = (
    "",
    "",
    "",
    "",
    "Hi! ",
    "Hello. ",
    "Hey there. ",
    "Good morning! ",
    "Hi, this is {name}. ",
)
_FOLLOW_UP_OPENERS: Final = (
    "",
    "",
    "Thanks. ",
    "OK, one more thing. ",
    "Great. ",
    "Another question. ",
)
_CLOSERS: Final = ("", "", "", " Thanks!", " Thank you.", " Thanks in advance.", " Appreciate it.")
_CONNECTORS: Final = (" Also, ", " And ", " Oh, and ")
_CHANNELS: Final = ("web", "web", "mobile-app", "email")
_SMALL_TALK: Final = (
    ("Hi, I need some help.", "Hello! I'm happy to help. What can I do for you today?"),
    ("hello?", "Hi there! How can I help you today?"),
    ("Is anyone there?", "Yes, I'm here. What can I help you with?"),
)
_SMALL_TALK_ENDINGS: Final = (
    ("Thanks, that's all I needed.", "You're welcome! Have a great day."),
    ("Perfect, thank you!", "Glad I could help. Anything else, just ask."),
    ("ok thanks bye", "Bye, and thanks for shopping with us!"),
)
# What the agent tells the customer once a tool has run; the next turn's history shows it.
_REPLIES: Final = {
    "get_order_status": "Order {order_id} has shipped and should arrive within 2 business days.",
    "cancel_order": "Done: order {order_id} is cancelled and you won't be charged.",
    "track_shipment": "Parcel {tracking_number} was scanned at the local depot and is out for delivery.",
    "request_refund": "I've opened a refund of ${amount:.2f} for order {order_id}; expect it within 5 business days.",
    "update_shipping_address": "Order {order_id} will now ship to {street}, {city}.",
    "check_product_availability": "Yes, {quantity} of {product_id} are available.",
    "search_products": "Here are the best matches for {query}.",
    "apply_discount_code": "Code {code} is applied to order {order_id}.",
    "schedule_callback": "An agent will call {phone} on {date}, {time_window}.",
    "reset_password": "I've sent a password reset link to {email}.",
    "update_subscription": "Your membership is now on the {plan} plan.",
    "escalate_to_human": "I've passed this to a colleague, who will get back to you shortly.",
}


class Turn(NamedTuple):
    """One logged call's content: the conversation so far, the new user message and the
    production model's answer (tool calls, or text)."""

    workload: Workload
    client_id: str
    conversation_id: str
    channel: str
    number: int  # 1 for a conversation's first user message
    # Earlier messages, system prompt excluded, as JSON array items each followed by ",".
    history_json: str
    user: str
    user_json: str
    calls: tuple[Intent, ...]
    call_ids: tuple[str, ...]
    reply_json: str  # the assistant message of the response


# Messages are written by hand around quoted strings: json.dumps sets up its C encoder anew on
# every call, which costs more than encoding a short message. A test checks the result equals
# a plain encoding.
def _message(role: str, content: str) -> str:
    return f'{{"role":"{role}","content":{quote(content)}}}'


def _tool_calls_message(calls: tuple[Intent, ...], call_ids: tuple[str, ...]) -> str:
    items = ",".join(
        f'{{"id":"{call_id}","type":"function","function":'
        f'{{"name":"{call.tool}","arguments":{quote(json.dumps(call.arguments))}}}}}'
        for call, call_id in zip(calls, call_ids, strict=True)
    )
    return f'{{"role":"assistant","content":null,"tool_calls":[{items}]}}'


def _tool_message(call_id: str, content: str) -> str:
    return f'{{"role":"tool","tool_call_id":"{call_id}","content":{quote(content)}}}'


def decapitalize(text: str) -> str:
    """Lower-case the first letter unless the first word is "I..." or an id like "ORD-1"."""
    word = text.split(" ", 1)[0]
    if word == "I" or word.startswith("I'") or not word[1:].islower():
        return text
    return text[0].lower() + text[1:]


def near_duplicate(rng: Random, text: str) -> str:
    """The same request typed slightly differently; every argument and cue stays verbatim."""
    style = rng.randrange(4)
    if style == 0 and decapitalize(text) != text:
        return decapitalize(text)
    if style == 1:
        return rng.choice(("hi ", "hey, ", "Hello. ")) + text
    if style == 2:
        return text + rng.choice((" Thanks.", " Please help.", " ", "!!"))
    return text[:-1] if text[-1] in ".?!" else text + "?"


def _history_after(turn: Turn) -> str:
    """The history a next turn sees: this turn, its tool results and the agent's reply to them."""
    history = f"{turn.history_json}{turn.user_json},{turn.reply_json},"
    if not turn.calls:
        return history
    replies = []
    for call, call_id in zip(turn.calls, turn.call_ids, strict=True):
        history += _tool_message(call_id, json.dumps({"status": "ok", **call.arguments})) + ","
        replies.append(_REPLIES[call.tool].format(**call.arguments))
    return history + _message("assistant", " ".join(replies)) + ","


@dataclass(slots=True)
class _Conversation:
    workload: Workload
    client_id: str
    conversation_id: str
    channel: str
    context: Context
    last: Turn | None = None


@dataclass(slots=True)
class TurnSource:
    """Draws the next logged turn from a mix of open conversations, new ones and repeats."""

    rng: Random
    workloads: tuple[Workload, ...]
    client_ids: tuple[str, ...]
    pick_workload: Weighted[Workload] = field(init=False)
    pick_tool: dict[str, Weighted[str]] = field(init=False)
    open: list[_Conversation] = field(default_factory=list)
    recent: deque[Turn] = field(default_factory=lambda: deque(maxlen=_RECENT))

    def __post_init__(self) -> None:
        self.pick_workload = Weighted(self.workloads, (w.share for w in self.workloads))
        self.pick_tool = {
            w.workload_id: Weighted(w.tools, (TOOL_WEIGHTS[t] for t in w.tools))
            for w in self.workloads
            if w.tools
        }

    def next_turn(self, today: dt.date) -> Turn:
        rng = self.rng
        draw = rng.random()
        if self.recent and draw < _P_REPEAT:
            return rng.choice(self.recent)
        if self.recent and draw < _P_REPEAT + _P_NEAR_DUPLICATE:
            turn = rng.choice(self.recent)
            user = near_duplicate(rng, turn.user)
            return turn._replace(user=user, user_json=_message("user", user))
        if self.open and draw < _P_REPEAT + _P_NEAR_DUPLICATE + _P_FOLLOW_UP:
            index = rng.randrange(len(self.open))
            conversation = self.open[index]
        else:
            index = len(self.open)
            conversation = self._start(today)
            if index < _MAX_OPEN:
                self.open.append(conversation)
        conversation.context.today = today
        turn = conversation.last = self._ask(conversation)
        self.recent.append(turn)
        said_goodbye = turn.number > 1 and bool(turn.workload.tools) and not turn.calls
        if index < len(self.open) and (
            said_goodbye or turn.number >= _MAX_TURNS or rng.random() < _P_END
        ):
            # Swap-remove: the order of open conversations only has to be deterministic.
            self.open[index] = self.open[-1]
            self.open.pop()
        return turn

    def _start(self, today: dt.date) -> _Conversation:
        rng = self.rng
        return _Conversation(
            self.pick_workload(rng),
            rng.choice(self.client_ids),
            f"conv-{rng.getrandbits(64):016x}",
            rng.choice(_CHANNELS),
            Context(today),
        )

    def _ask(self, conversation: _Conversation) -> Turn:
        rng, workload, last = self.rng, conversation.workload, conversation.last
        calls: tuple[Intent, ...] = ()
        if not workload.tools:
            question, answer = chat.exchange(rng, follow_up=last is not None)
            user = self._decorate(question, first=last is None)
        elif workload.workload_id == ROUTER and rng.random() < _P_SMALL_TALK:
            user, answer = rng.choice(_SMALL_TALK if last is None else _SMALL_TALK_ENDINGS)
        else:
            calls = self._intents(conversation)
            user, answer = self._compose(calls, first=last is None), ""
        call_ids = tuple(f"call_{rng.getrandbits(64):016x}" for _ in calls)
        reply = _tool_calls_message(calls, call_ids) if calls else _message("assistant", answer)
        return Turn(
            workload=workload,
            client_id=conversation.client_id,
            conversation_id=conversation.conversation_id,
            channel=conversation.channel,
            number=1 if last is None else last.number + 1,
            history_json="" if last is None else _history_after(last),
            user=user,
            user_json=_message("user", user),
            calls=calls,
            call_ids=call_ids,
            reply_json=reply,
        )

    def _intents(self, conversation: _Conversation) -> tuple[Intent, ...]:
        rng, workload = self.rng, conversation.workload
        pick_tool = self.pick_tool[workload.workload_id]
        first = pick_tool(rng)
        intents: tuple[Intent, ...] = (BUILDERS[first](rng, conversation.context),)
        if workload.workload_id == ROUTER and rng.random() < _P_PARALLEL:
            second = first
            while second == first:
                second = pick_tool(rng)
            intents += (BUILDERS[second](rng, conversation.context),)
        return intents

    def _compose(self, intents: tuple[Intent, ...], first: bool) -> str:
        text = intents[0].text
        if len(intents) == 2:
            text += self.rng.choice(_CONNECTORS) + decapitalize(intents[1].text)
        return self._decorate(text, first)

    def _decorate(self, text: str, first: bool) -> str:
        """Greetings and thanks around the request, as customers write them."""
        rng = self.rng
        opener = rng.choice(_OPENERS if first else _FOLLOW_UP_OPENERS)
        if "{name}" in opener:
            opener = opener.format(name=rng.choice(vocab.FIRST_NAMES))
        return opener + text + rng.choice(_CLOSERS)
