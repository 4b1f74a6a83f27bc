"""The support agent's tools: OpenAI function definitions with typed JSON-Schema parameters.

Every tool stays at or under 8 parameters: the blueprint drops records whose tools have more
(a NIM limitation), and generated traffic must survive its filters.
"""

from types import MappingProxyType
from typing import Any, Final

JsonObject = dict[str, Any]

ORDER_ID_PATTERN: Final = r"^ORD-\d{6}$"
PRODUCT_ID_PATTERN: Final = r"^PRD-\d{5}$"

CANCEL_REASONS: Final = ("changed_mind", "found_cheaper", "ordered_by_mistake", "shipping_delay")
REFUND_REASONS: Final = ("damaged", "wrong_item", "not_received", "defective")
REFUND_METHODS: Final = ("original_payment", "store_credit")
CARRIERS: Final = ("ups", "fedex", "usps", "dhl")
CATEGORIES: Final = ("electronics", "home", "clothing", "sports", "beauty", "toys")
TIME_WINDOWS: Final = ("morning", "afternoon", "evening")
PLANS: Final = ("basic", "plus", "premium")
BILLING_CYCLES: Final = ("monthly", "annual")
PRIORITIES: Final = ("low", "normal", "high", "urgent")


def _string(description: str, **constraints: Any) -> JsonObject:
    return {"type": "string", "description": description, **constraints}


def _enum(description: str, values: tuple[str, ...]) -> JsonObject:
    return {"type": "string", "enum": list(values), "description": description}


_ORDER_ID = _string(
    "Order number as given by the customer, e.g. ORD-123456.", pattern=ORDER_ID_PATTERN
)


def _tool(
    name: str, description: str, properties: JsonObject, required: tuple[str, ...]
) -> JsonObject:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": list(required),
                "additionalProperties": False,
            },
        },
    }


_DEFINITIONS: Final = (
    _tool(
        "get_order_status",
        "Look up the current status and expected delivery date of an order.",
        {"order_id": _ORDER_ID},
        ("order_id",),
    ),
    _tool(
        "cancel_order",
        "Cancel an order that has not shipped yet.",
        {"order_id": _ORDER_ID, "reason": _enum("Why the customer cancels.", CANCEL_REASONS)},
        ("order_id", "reason"),
    ),
    _tool(
        "track_shipment",
        "Get the latest carrier scan for a parcel.",
        {
            "tracking_number": _string("Carrier tracking number."),
            "carrier": _enum("Carrier, only when the customer names it.", CARRIERS),
        },
        ("tracking_number",),
    ),
    _tool(
        "request_refund",
        "Open a refund for an order or part of it.",
        {
            "order_id": _ORDER_ID,
            "amount": {"type": "number", "exclusiveMinimum": 0, "description": "Amount in USD."},
            "reason": _enum("Why the customer wants a refund.", REFUND_REASONS),
            "refund_method": _enum(
                "Where the money goes; default original payment.", REFUND_METHODS
            ),
        },
        ("order_id", "amount", "reason"),
    ),
    _tool(
        "update_shipping_address",
        "Change the delivery address of an order that has not shipped yet.",
        {
            "order_id": _ORDER_ID,
            "street": _string("Street and house number."),
            "city": _string("City."),
            "postal_code": _string("Postal or ZIP code."),
            "country": _string("Country name."),
        },
        ("order_id", "street", "city", "postal_code", "country"),
    ),
    _tool(
        "check_product_availability",
        "Check whether a product is in stock in the requested quantity.",
        {
            "product_id": _string("Product id, e.g. PRD-12345.", pattern=PRODUCT_ID_PATTERN),
            "quantity": {
                "type": "integer",
                "minimum": 1,
                "maximum": 50,
                "description": "Units wanted.",
            },
            "postal_code": _string("ZIP code to check nearby stores, if the customer gives one."),
        },
        ("product_id", "quantity"),
    ),
    _tool(
        "search_products",
        "Search the catalogue.",
        {
            "query": _string("What the customer is looking for, in their words."),
            "category": _enum("Department to search in.", CATEGORIES),
            "max_price": {"type": "number", "exclusiveMinimum": 0, "description": "Budget in USD."},
            "in_stock_only": {
                "type": "boolean",
                "description": "Hide items that are out of stock.",
            },
        },
        ("query",),
    ),
    _tool(
        "apply_discount_code",
        "Apply a promotion code to an existing order.",
        {"order_id": _ORDER_ID, "code": _string("Promotion code, upper case.")},
        ("order_id", "code"),
    ),
    _tool(
        "schedule_callback",
        "Book a phone call from a support agent.",
        {
            "phone": _string("Phone number exactly as the customer wrote it."),
            "date": _string("Day of the call.", format="date"),
            "time_window": _enum("Part of the day.", TIME_WINDOWS),
        },
        ("phone", "date", "time_window"),
    ),
    _tool(
        "reset_password",
        "Send a password-reset link to the account's email address.",
        {"email": _string("Account email address.", format="email")},
        ("email",),
    ),
    _tool(
        "update_subscription",
        "Change the customer's membership plan.",
        {
            "email": _string("Account email address.", format="email"),
            "plan": _enum("New plan.", PLANS),
            "billing_cycle": _enum(
                "Billing period, if the customer asks to change it.", BILLING_CYCLES
            ),
            "auto_renew": {"type": "boolean", "description": "Renew automatically, if mentioned."},
        },
        ("email", "plan"),
    ),
    _tool(
        "escalate_to_human",
        "Hand the conversation to a human agent.",
        {
            "summary": _string("The customer's issue, in their words."),
            "priority": _enum("How urgent the customer says it is.", PRIORITIES),
        },
        ("summary", "priority"),
    ),
)

TOOLS: Final = MappingProxyType({d["function"]["name"]: d for d in _DEFINITIONS})
"""Tool name -> OpenAI tool definition (``{"type": "function", "function": {...}}``)."""

TOOL_NAMES: Final = tuple(TOOLS)
