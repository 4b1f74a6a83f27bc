"""What the client reads from NMP and OpenAI-compatible servers: strict where we rely on a field,
tolerant of everything else a real server adds."""

import pytest
from pydantic import ValidationError

from flywheel_contracts.runtime.nmp import ChatCompletion, CustomizationJob

pytestmark = pytest.mark.unit

_CHOICES = [{"index": 0, "message": {"role": "assistant", "content": "hi"}}]


@pytest.mark.parametrize(
    "details",
    [None, {"cached_tokens": 0}, {"reasoning_tokens": 3, "audio_tokens": None}],
)
def test_usage_with_token_details_as_openai_compatible_servers_send_it_parses(
    details: object,
) -> None:
    usage = {
        "prompt_tokens": 12,
        "completion_tokens": 3,
        "total_tokens": 15,
        "prompt_tokens_details": details,
        "completion_tokens_details": details,
    }
    completion = ChatCompletion.model_validate({"choices": _CHOICES, "usage": usage})
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (12, 3)


def test_token_counts_we_read_are_still_checked() -> None:
    with pytest.raises(ValidationError):
        ChatCompletion.model_validate({"choices": _CHOICES, "usage": {"prompt_tokens": "many"}})


def test_a_customization_job_without_name_or_output_model_parses() -> None:
    job = CustomizationJob.model_validate(
        {"id": "cust-1", "namespace": "dfwbp", "status": "pending", "custom_fields": {"k": "v"}}
    )
    assert job.output_model is None and job.custom_fields == {"k": "v"}
