"""What customers ask the support agent for, and the tool call that correctly serves it.

One builder per tool renders a user utterance and the arguments the production model should
extract from it. Every argument value is written into the utterance (or, for an order the
customer refers back to, into an earlier turn of the same conversation): enum and boolean
values through the cue phrases in ``CUES``, numbers as digits, dates as ISO or spelled out.
"""

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from random import Random
from types import MappingProxyType
from typing import Any, Final

from flywheel_contracts.traffic import vocab
from flywheel_contracts.traffic.sampling import fill_pattern

Arguments = dict[str, Any]


@dataclass(slots=True)
class Context:
    """What the conversation has established so far; builders read and update it."""

    today: dt.date
    order_id: str | None = None


@dataclass(frozen=True, slots=True)
class Intent:
    """One user request and the tool call that serves it."""

    text: str
    tool: str
    arguments: Arguments


Builder = Callable[[Random, Context], Intent]

# Enum and boolean values are chosen by these phrases; a value's phrases never contain
# another value's phrase for the same parameter, so the expected value is unambiguous.
CUES: Final[Mapping[tuple[str, str], Mapping[Any, tuple[str, ...]]]] = MappingProxyType(
    {
        ("cancel_order", "reason"): {
            "changed_mind": ("I changed my mind", "I don't need it anymore"),
            "found_cheaper": (
                "I found it cheaper elsewhere",
                "I saw a better price somewhere else",
            ),
            "ordered_by_mistake": ("I ordered it by mistake", "I placed it by accident"),
            "shipping_delay": ("it's taking too long to ship", "the delivery date keeps slipping"),
        },
        ("request_refund", "reason"): {
            "damaged": ("it arrived damaged", "the box was crushed and the item is broken"),
            "wrong_item": (
                "you sent me the wrong item",
                "I got a different product than I ordered",
            ),
            "not_received": ("it never arrived", "I never received it"),
            "defective": ("it stopped working after two days", "it's defective"),
        },
        ("request_refund", "refund_method"): {
            "original_payment": ("back to my card", "to my original payment method"),
            "store_credit": ("as store credit", "in store credit"),
        },
        ("track_shipment", "carrier"): {
            "ups": ("UPS",),
            "fedex": ("FedEx",),
            "usps": ("USPS",),
            "dhl": ("DHL",),
        },
        ("search_products", "category"): {
            "electronics": ("Electronics",),
            "home": ("Home & Kitchen",),
            "clothing": ("Clothing",),
            "sports": ("Sports & Outdoors",),
            "beauty": ("Beauty",),
            "toys": ("Toys & Games",),
        },
        ("search_products", "in_stock_only"): {
            True: ("only show items in stock", "only things that are in stock right now"),
        },
        ("schedule_callback", "time_window"): {
            "morning": ("in the morning", "before noon"),
            "afternoon": ("in the afternoon", "after lunch"),
            "evening": ("in the evening", "after 6pm"),
        },
        ("update_subscription", "plan"): {
            "basic": ("Basic plan", "Basic tier"),
            "plus": ("Plus plan", "Plus tier"),
            "premium": ("Premium plan", "Premium tier"),
        },
        ("update_subscription", "billing_cycle"): {
            "monthly": ("billed monthly", "monthly billing"),
            "annual": ("billed annually", "yearly billing"),
        },
        ("update_subscription", "auto_renew"): {
            True: ("keep auto-renew on", "turn on auto-renewal"),
            False: ("turn off auto-renewal", "stop the automatic renewal"),
        },
        ("escalate_to_human", "priority"): {
            "low": ("no rush", "whenever someone has time"),
            "normal": ("when you get a chance", "at your convenience"),
            "high": ("this is important to me", "I'm really frustrated"),
            "urgent": ("this is an emergency", "I need someone right now"),
        },
    }
)


def _cue(rng: Random, tool: str, param: str, value: Any) -> str:
    return rng.choice(CUES[tool, param][value])


def _pick_cued(rng: Random, tool: str, param: str) -> tuple[Any, str]:
    value = rng.choice(tuple(CUES[tool, param]))
    return value, _cue(rng, tool, param, value)


_ORDER_MENTIONS: Final = ("order {id}", "{id}", "my order {id}", "order #{id}", "order number {id}")
_ORDER_REFERENCES: Final = ("that order", "the same order", "that one", "this order")


def _order(rng: Random, ctx: Context) -> str:
    """Mention an order: a new id, or half the time the order the conversation is about."""
    if ctx.order_id is not None and rng.random() < 0.5:
        return rng.choice(_ORDER_REFERENCES)
    ctx.order_id = f"ORD-{rng.randrange(100000, 1000000)}"
    return rng.choice(_ORDER_MENTIONS).format(id=ctx.order_id)


def _money(rng: Random, low: int, high: int) -> float:
    return rng.randrange(low * 100, high * 100) / 100


def _email(rng: Random) -> str:
    first, last = rng.choice(vocab.FIRST_NAMES).lower(), rng.choice(vocab.LAST_NAMES).lower()
    local = rng.choice((f"{first}.{last}", f"{first[0]}{last}", f"{first}{rng.randrange(10, 99)}"))
    return f"{local}@{rng.choice(vocab.EMAIL_DOMAINS)}"


_STATUS: Final = (
    "Where is {order}?",
    "What's the status of {order}?",
    "Has {order} shipped yet?",
    "I placed {order} last week and haven't heard anything. Any update?",
    "Can you check on {order} for me?",
    "Order status for {order} please.",
    "Any news on {order}? It was supposed to arrive yesterday.",
    "When will {order} be delivered?",
    "Could you tell me if {order} is on its way?",
)


def _get_order_status(rng: Random, ctx: Context) -> Intent:
    text = rng.choice(_STATUS).format(order=_order(rng, ctx))
    return Intent(text, "get_order_status", {"order_id": ctx.order_id})


_CANCEL: Final = (
    "Please cancel {order}, {reason}.",
    "I want to cancel {order} because {reason}.",
    "Can you cancel {order}? {Reason}.",
    "{Reason}, so please cancel {order}.",
    "Cancel {order} please. Honestly {reason}.",
    "I'd like to cancel {order} - {reason}.",
)


def _cancel_order(rng: Random, ctx: Context) -> Intent:
    order = _order(rng, ctx)
    reason, cue = _pick_cued(rng, "cancel_order", "reason")
    text = rng.choice(_CANCEL).format(order=order, reason=cue, Reason=cue[0].upper() + cue[1:])
    return Intent(text, "cancel_order", {"order_id": ctx.order_id, "reason": reason})


_TRACK: Final = (
    "Can you track {number}{carrier}?",
    "My tracking number is {number}{carrier}. Where is the parcel now?",
    "Where's my package? Tracking {number}{carrier}.",
    "Please look up shipment {number}{carrier}, it hasn't moved in days.",
    "What's the latest scan for tracking number {number}{carrier}?",
)
# Each carrier's number format, so the number and the named carrier agree.
_TRACKING_FORMATS: Final = {
    "ups": "1ZAAA###AA########",
    "fedex": "############",
    "usps": "9400##################",
    "dhl": "##########",
}
_CARRIER_MENTIONS: Final = (" ({name})", " with {name}", ", it's a {name} parcel", " via {name}")


def _track_shipment(rng: Random, ctx: Context) -> Intent:
    carrier, name = _pick_cued(rng, "track_shipment", "carrier")
    number = fill_pattern(rng, _TRACKING_FORMATS[carrier])
    arguments: Arguments = {"tracking_number": number}
    mention = ""
    if rng.random() < 0.5:
        arguments["carrier"] = carrier
        mention = rng.choice(_CARRIER_MENTIONS).format(name=name)
    text = rng.choice(_TRACK).format(number=number, carrier=mention)
    return Intent(text, "track_shipment", arguments)


_REFUND: Final = (
    "I'd like a refund of ${amount} for {order}, {reason}.",
    "Please refund ${amount} on {order} because {reason}.",
    "{Reason}. I want my ${amount} back for {order}.",
    "Can I get ${amount} refunded for {order}? {Reason}.",
    "Refund request: {order}, ${amount}, {reason}.",
)
_REFUND_METHOD: Final = (
    " Put it {method}.",
    " Refund it {method}, please.",
    " I'd like it {method}.",
)


def _request_refund(rng: Random, ctx: Context) -> Intent:
    order = _order(rng, ctx)
    amount = _money(rng, 5, 400)
    reason, cue = _pick_cued(rng, "request_refund", "reason")
    text = rng.choice(_REFUND).format(
        order=order, amount=f"{amount:.2f}", reason=cue, Reason=cue[0].upper() + cue[1:]
    )
    arguments: Arguments = {"order_id": ctx.order_id, "amount": amount, "reason": reason}
    if rng.random() < 0.35:
        arguments["refund_method"], method = _pick_cued(rng, "request_refund", "refund_method")
        text += rng.choice(_REFUND_METHOD).format(method=method)
    return Intent(text, "request_refund", arguments)


_ADDRESS: Final = (
    "Please change the shipping address for {order} to {street}, {city} {postal}, {country}.",
    "I moved! Can you send {order} to {street}, {postal} {city}, {country} instead?",
    "New delivery address for {order}: {street}, {city}, {postal}, {country}.",
    "Could you update {order} so it ships to {street}, {city} {postal}, {country}?",
    "Ship {order} to {street} in {city}, {country}, postal code {postal} please.",
)


def _update_shipping_address(rng: Random, ctx: Context) -> Intent:
    order = _order(rng, ctx)
    country = rng.choice(vocab.COUNTRIES)
    number, street_name = str(rng.randrange(1, 400)), rng.choice(country.streets)
    street = f"{number} {street_name}" if country.number_first else f"{street_name} {number}"
    city, postal = rng.choice(country.cities), fill_pattern(rng, country.postal_format)
    text = rng.choice(_ADDRESS).format(
        order=order, street=street, city=city, postal=postal, country=country.name
    )
    arguments = {
        "order_id": ctx.order_id,
        "street": street,
        "city": city,
        "postal_code": postal,
        "country": country.name,
    }
    return Intent(text, "update_shipping_address", arguments)


_AVAILABILITY: Final = (
    "Do you have {quantity} of the {name} ({product}) in stock{near}?",
    "Is {product} available? I need {quantity}{near}.",
    "Can I get {quantity} units of {product}{near}?",
    "I want to buy {quantity} x {name} (item {product}). Are there enough{near}?",
    "Checking stock on {product}: is {quantity} possible{near}?",
)


def _check_product_availability(rng: Random, ctx: Context) -> Intent:
    product = rng.choice(vocab.PRODUCTS)
    quantity = rng.choice((1, 1, 2, 2, 3, 4, 5, 6, 10, 12, 20))
    arguments: Arguments = {"product_id": product.product_id, "quantity": quantity}
    near = ""
    if rng.random() < 0.3:
        arguments["postal_code"] = fill_pattern(rng, "#####")
        near = rng.choice(
            (" near {zip}", " for pickup around ZIP {zip}", " in a store close to {zip}")
        )
        near = near.format(zip=arguments["postal_code"])
    text = rng.choice(_AVAILABILITY).format(
        quantity=quantity, name=product.name, product=product.product_id, near=near
    )
    return Intent(text, "check_product_availability", arguments)


_SEARCH: Final = (
    "I'm looking for {query}{filters}.",
    "Do you sell {query}{filters}?",
    "Can you find me {query}{filters}?",
    "Show me {query}{filters}.",
    "Searching for {query}{filters}, any suggestions?",
)


def _search_products(rng: Random, ctx: Context) -> Intent:
    category, department = _pick_cued(rng, "search_products", "category")
    query = rng.choice(vocab.SEARCH_QUERIES[category])
    arguments: Arguments = {"query": query}
    filters = []
    if rng.random() < 0.4:
        arguments["category"] = category
        filters.append(rng.choice((" in {d}", " from the {d} department")).format(d=department))
    if rng.random() < 0.5:
        price = arguments["max_price"] = rng.choice((20, 25, 30, 50, 75, 100, 150, 200, 49.99))
        filters.append(
            rng.choice((" under ${p}", " for less than ${p}", ", budget ${p}")).format(p=price)
        )
    if rng.random() < 0.25:
        arguments["in_stock_only"] = True
        filters.append(", " + _cue(rng, "search_products", "in_stock_only", True))
    text = rng.choice(_SEARCH).format(query=query, filters="".join(filters))
    return Intent(text, "search_products", arguments)


_DISCOUNT: Final = (
    "I forgot to use the code {code} on {order}, can you apply it?",
    "Please apply discount code {code} to {order}.",
    "Can {code} still be added to {order}?",
    "I have a promo code, {code}. Could you put it on {order}?",
)


def _apply_discount_code(rng: Random, ctx: Context) -> Intent:
    code = rng.choice(vocab.DISCOUNT_CODES)
    text = rng.choice(_DISCOUNT).format(code=code, order=_order(rng, ctx))
    return Intent(text, "apply_discount_code", {"order_id": ctx.order_id, "code": code})


_CALLBACK: Final = (
    "Can someone call me at {phone} on {date} {window}?",
    "Please schedule a callback to {phone}, {date}, {window}.",
    "I'd rather talk on the phone. My number is {phone}; {date} {window} works best.",
    "Call me back on {date} {window} please, number {phone}.",
)


# Not strftime("%B"): that follows the locale, and output must not depend on the machine.
_MONTHS: Final = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def _spell_date(rng: Random, day: dt.date) -> str:
    """Write a date the way customers do; the tests accept exactly these forms."""
    month = _MONTHS[day.month - 1]
    return rng.choice(
        (day.isoformat(), f"{month} {day.day}, {day.year}", f"{day.day} {month} {day.year}")
    )


def _schedule_callback(rng: Random, ctx: Context) -> Intent:
    phone = fill_pattern(rng, rng.choice(vocab.PHONE_FORMATS))
    day = ctx.today + dt.timedelta(days=rng.randrange(1, 15))
    window, cue = _pick_cued(rng, "schedule_callback", "time_window")
    text = rng.choice(_CALLBACK).format(phone=phone, date=_spell_date(rng, day), window=cue)
    arguments = {"phone": phone, "date": day.isoformat(), "time_window": window}
    return Intent(text, "schedule_callback", arguments)


_RESET: Final = (
    "I can't log in. Please reset the password for {email}.",
    "Forgot my password, the account email is {email}.",
    "Send a password reset link to {email} please.",
    "How do I get back into my account? It's {email}, I forgot the password.",
    "My login for {email} stopped working, I need a new password.",
)


def _reset_password(rng: Random, ctx: Context) -> Intent:
    email = _email(rng)
    return Intent(rng.choice(_RESET).format(email=email), "reset_password", {"email": email})


_SUBSCRIPTION: Final = (
    "Please switch my membership to the {plan}{extras}. My email is {email}.",
    "I want to move to the {plan}{extras}, account {email}.",
    "Can you change {email} to the {plan}{extras}?",
    "Upgrade or downgrade, whatever it is: put {email} on the {plan}{extras}.",
)


def _update_subscription(rng: Random, ctx: Context) -> Intent:
    email = _email(rng)
    plan, plan_cue = _pick_cued(rng, "update_subscription", "plan")
    arguments: Arguments = {"email": email, "plan": plan}
    extras = ""
    if rng.random() < 0.35:
        arguments["billing_cycle"], cycle = _pick_cued(rng, "update_subscription", "billing_cycle")
        extras += f", {cycle}"
    if rng.random() < 0.3:
        arguments["auto_renew"], renew = _pick_cued(rng, "update_subscription", "auto_renew")
        extras += f", and {renew}"
    text = rng.choice(_SUBSCRIPTION).format(plan=plan_cue, extras=extras, email=email)
    return Intent(text, "update_subscription", arguments)


_ESCALATE: Final = (
    "I want to talk to a real person about {issue}. {Priority}.",
    "Please get me a human agent, it's about {issue}, {priority}.",
    "Your bot can't help with {issue}. Escalate this, {priority}.",
    "{Priority}: I need a supervisor about {issue}.",
    "Can a human look into {issue}? {Priority}.",
)


def _escalate_to_human(rng: Random, ctx: Context) -> Intent:
    issue = rng.choice(vocab.ESCALATION_ISSUES)
    priority, cue = _pick_cued(rng, "escalate_to_human", "priority")
    text = rng.choice(_ESCALATE).format(
        issue=issue, priority=cue, Priority=cue[0].upper() + cue[1:]
    )
    return Intent(text, "escalate_to_human", {"summary": issue, "priority": priority})


BUILDERS: Final[Mapping[str, Builder]] = MappingProxyType(
    {
        "get_order_status": _get_order_status,
        "cancel_order": _cancel_order,
        "track_shipment": _track_shipment,
        "request_refund": _request_refund,
        "update_shipping_address": _update_shipping_address,
        "check_product_availability": _check_product_availability,
        "search_products": _search_products,
        "apply_discount_code": _apply_discount_code,
        "schedule_callback": _schedule_callback,
        "reset_password": _reset_password,
        "update_subscription": _update_subscription,
        "escalate_to_human": _escalate_to_human,
    }
)
