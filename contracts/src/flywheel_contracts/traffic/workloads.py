"""The workloads of the simulated support agent: one per LLM call site in the application."""

from types import MappingProxyType
from typing import Final, NamedTuple

from flywheel_contracts.traffic.catalog import TOOL_NAMES

ROUTER: Final = "customer-service-router"
ORDER_TOOLS: Final = "order-tools"
CHAT: Final = "customer-service-chat"


class Workload(NamedTuple):
    """One call site: its prompt, its tools (none for chat) and its share of the traffic."""

    workload_id: str
    share: float
    system_prompt: str
    tools: tuple[str, ...]
    temperature: float
    max_tokens: int


# How often customers ask for each tool; order questions dominate support traffic.
TOOL_WEIGHTS: Final = MappingProxyType(
    {
        "get_order_status": 3.0,
        "cancel_order": 1.5,
        "track_shipment": 2.0,
        "request_refund": 1.5,
        "update_shipping_address": 1.0,
        "check_product_availability": 1.0,
        "search_products": 2.0,
        "apply_discount_code": 1.0,
        "schedule_callback": 0.8,
        "reset_password": 1.5,
        "update_subscription": 1.0,
        "escalate_to_human": 0.8,
    }
)

WORKLOADS: Final = MappingProxyType(
    {
        w.workload_id: w
        for w in (
            Workload(
                ROUTER,
                0.45,
                "You are the customer-service agent of Acme Online Store. Today is {today}. Pick the "
                "tool that handles the customer's request and call it with arguments taken from the "
                "conversation. Never invent order numbers, emails or amounts. Call two tools at once "
                "when the customer asks for two things.",
                TOOL_NAMES,
                0.0,
                512,
            ),
            Workload(
                ORDER_TOOLS,
                0.25,
                "You manage orders for Acme Online Store. Today is {today}. Use exactly the order "
                "number, amounts and addresses the customer gives.",
                (
                    "get_order_status",
                    "cancel_order",
                    "track_shipment",
                    "request_refund",
                    "update_shipping_address",
                    "apply_discount_code",
                ),
                0.0,
                256,
            ),
            Workload(
                CHAT,
                0.30,
                "You are the friendly support assistant of Acme Online Store. Answer questions about "
                "shipping, returns, payments, warranties and memberships briefly and accurately. "
                "Never ask for full card numbers or passwords.",
                (),
                0.7,
                400,
            ),
        )
    }
)
WORKLOAD_IDS: Final = tuple(WORKLOADS)
