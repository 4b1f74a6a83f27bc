"""The small CPU models, one piece at a time."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from flywheel_nmp_emulator.models.arguments import fill_arguments
from flywheel_nmp_emulator.models.capacity import capacity_of, parse_size_b
from flywheel_nmp_emulator.models.embeddings import embed
from flywheel_nmp_emulator.models.examples import IclParser, split_requests
from flywheel_nmp_emulator.models.instruct import InstructModel, ModelKit
from flywheel_nmp_emulator.models.judge import judge_reply, similarity_score, tool_call_rating
from flywheel_nmp_emulator.models.lora import Adapter
from flywheel_nmp_emulator.models.tools import ToolsCache
from flywheel_nmp_emulator.testing import ICL_SYSTEM_HEADER, _example_text, training_record

pytestmark = pytest.mark.unit

REFUND_TOOL = {
    "type": "function",
    "function": {
        "name": "request_refund",
        "description": "Refund an order.",
        "parameters": {
            "type": "object",
            "properties": {
                "order_id": {"type": "string", "pattern": "^ORD-\\d{6}$"},
                "amount": {"type": "number"},
                "reason": {"type": "string", "enum": ["damaged", "wrong_item"]},
                "contact_email": {"type": "string"},
                "notes": {"type": "string"},
            },
            "required": ["order_id", "amount", "reason"],
        },
    },
}


def _spec() -> Any:
    return ToolsCache().get([REFUND_TOOL])[1][0]


def test_size_parsing_and_capacity_order() -> None:
    assert parse_size_b("meta/llama-3.2-1b-instruct") == 1
    assert parse_size_b("meta/llama-3.3-70b-instruct") == 70
    assert parse_size_b("mistralai/mixtral-8x7b-instruct") == 56
    assert parse_size_b("nvidia/unnamed") == 8
    assert (
        capacity_of("x-70b").confusion
        < capacity_of("x-8b").confusion
        < capacity_of("x-1b").confusion
    )


def test_type_aware_argument_extraction() -> None:
    args = fill_arguments(
        _spec(),
        'Refund $25.50 on ORD-123456, it arrived damaged. Mail me at ana@x.org. Note: "leave at door"',
        None,
        use_cues=True,
    )
    assert args["order_id"] == "ORD-123456" and args["amount"] == 25.5
    assert args["reason"] == "damaged" and args["contact_email"] == "ana@x.org"


def test_required_value_from_earlier_turn() -> None:
    history = '{"order_id": "ORD-654321"}\nWhere is ORD-654321?'
    args = fill_arguments(
        _spec(), "Refund that one, $10, wrong item", None, use_cues=True, history=history
    )
    assert args["order_id"] == "ORD-654321" and args["reason"] == "wrong_item"


def test_split_requests_only_at_second_request_markers() -> None:
    assert split_requests(
        "Please track 1234567890. Also, reset the password for a@b.c please."
    ) == [
        "Please track 1234567890.",
        "reset the password for a@b.c please.",
    ]
    assert split_requests("Switch me to Premium, billed annually, and turn on auto-renewal.") == [
        "Switch me to Premium, billed annually, and turn on auto-renewal."
    ]


def test_icl_examples_are_parsed_from_the_blueprint_format(
    router_traffic: list[dict[str, Any]],
) -> None:
    record = router_traffic[0]
    system = f"{ICL_SYSTEM_HEADER}\n\n{_example_text(record)}\n\nYou are an agent."
    examples = IclParser().parse(system)
    call = record["response"]["choices"][0]["message"]["tool_calls"][0]["function"]
    assert len(examples) == 1
    assert examples[0].tool == call["name"]
    assert examples[0].arguments == json.loads(call["arguments"])
    assert examples[0].text == record["request"]["messages"][-1]["content"]


def test_customized_model_learns_the_workload(router_traffic: list[dict[str, Any]]) -> None:
    train, held_out = router_traffic[:500], router_traffic[500:700]
    adapter = Adapter.train([training_record(r) for r in train])
    restored = Adapter.from_json(adapter.to_json())
    kit = ModelKit()
    base = InstructModel("meta/llama-3.2-1b-instruct", kit, seed=0)
    tuned = InstructModel("meta/llama-3.2-1b-instruct+lora", kit, seed=0, adapter=restored)

    def accuracy(model: InstructModel) -> float:
        hits = 0
        for record in held_out:
            reply = model.respond(
                record["request"]["messages"], record["request"]["tools"], "required"
            )
            expected = sorted(
                c["function"]["name"]
                for c in record["response"]["choices"][0]["message"]["tool_calls"]
            )
            hits += sorted(c["function"]["name"] for c in reply.tool_calls or []) == expected
        return hits / len(held_out)

    assert accuracy(tuned) >= 0.9 > accuracy(base)
    assert adapter.accuracy([training_record(r) for r in held_out]) == pytest.approx(
        restored.accuracy([training_record(r) for r in held_out])
    )


def test_judge_tool_call_rubric() -> None:
    truth = [
        {
            "function": {
                "name": "request_refund",
                "arguments": {
                    "order_id": "ORD-1",
                    "reason": "damaged",
                    "notes": "the parcel was left outside in the rain",
                },
            }
        }
    ]
    good = [
        {
            "function": {
                "name": "request_refund",
                "arguments": json.dumps(
                    {
                        "order_id": "ORD-1",
                        "reason": "damaged",
                        "notes": "parcel left outside in the rain",
                    }
                ),
            }
        }
    ]
    wrong_id = [
        {
            "function": {
                "name": "request_refund",
                "arguments": {"order_id": "ORD-2", "reason": "damaged", "notes": "x"},
            }
        }
    ]
    assert tool_call_rating(f"*Ground Truth*: {truth}\n*Prediction*: {good}")[0] == 1
    assert tool_call_rating(f"*Ground Truth*: {truth}\n*Prediction*: {wrong_id}")[0] == 0
    assert tool_call_rating(f"*Ground Truth*: {truth}\n*Prediction*: None")[0] == 0
    reply = judge_reply(f"*Ground Truth*: {json.dumps(truth)}\n*Prediction*: []")
    assert reply is not None and reply.startswith("RATING: 0\nEXPLANATION:")


def test_judge_similarity_scale() -> None:
    def prompt(reference: str, candidate: str) -> str:
        return f"TASK / QUESTION:\nq\n---\nREFERENCE ANSWER:\n{reference}\n---\nCANDIDATE ANSWER:\n{candidate}\n---"

    same = "Returns are free within 30 days of delivery."
    assert similarity_score(prompt(same, same)) == 10
    close = similarity_score(prompt(same, "Returns are free for 30 days after delivery."))
    far = similarity_score(prompt(same, "Our office is closed on Sundays."))
    assert 10 > close > far >= 1
    assert similarity_score(prompt(same, "")) == 1


def test_embeddings_are_unit_length_deterministic_and_meaningful() -> None:
    vectors = embed(["cancel my order", "please cancel the order", "weather in Paris", ""], 2048)
    assert vectors.shape == (4, 2048) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert vectors[0] @ vectors[1] > 0.5 > vectors[0] @ vectors[2]
    assert np.array_equal(
        vectors, embed(["cancel my order", "please cancel the order", "weather in Paris", ""], 2048)
    )


def test_generic_answer_is_extractive() -> None:
    model = InstructModel("meta/llama-3.1-8b-instruct", ModelKit(), seed=0)
    reply = model.respond(
        [
            {
                "role": "system",
                "content": "Standard shipping takes 3-5 days. Express shipping arrives next day. Returns are free.",
            },
            {"role": "user", "content": "How fast is express shipping?"},
        ]
    )
    assert reply.tool_calls is None and reply.content is not None
    assert "Express shipping arrives next day." in reply.content
