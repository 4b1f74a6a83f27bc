"""`flywheel run`'s override options, mapped onto `RunOverrides`.

Each option names one `RunOverrides` field; an unset option leaves the deployment's default.
Values reach pydantic as given, so the bounds live in one place: the contract.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from flywheel_contracts.cli.errors import describe, invalid_as_usage
from flywheel_contracts.run_config import (
    CandidateConfig,
    EvalType,
    ExampleSelection,
    ExternalEndpoint,
    RunOverrides,
)

F = TypeVar("F", bound=Callable[..., Any])

# What a candidate spec may set after its model name: an external endpoint's fields as
# `endpoint.FIELD` (its headers only through a run request's JSON).
_ENDPOINT = "endpoint."
SPEC_FIELDS = tuple(
    name for name in CandidateConfig.model_fields if name not in ("model_name", "endpoint")
) + tuple(_ENDPOINT + name for name in ExternalEndpoint.model_fields if name != "headers")
_SPEC_HELP = (
    "Candidate model, replacing the deployment's list; repeat for several. "
    "MODEL[,FIELD=VALUE...] with FIELD one of " + ", ".join(SPEC_FIELDS) + "."
)


@dataclass(frozen=True)
class OverrideOption:
    flag: str
    field: str
    type: click.ParamType[Any, Any]
    help: str
    multiple: bool = False


OVERRIDE_OPTIONS: tuple[OverrideOption, ...] = (
    OverrideOption("--eval-size", "eval_size", click.INT, "Records held out for evaluation."),
    OverrideOption("--val-ratio", "val_ratio", click.FLOAT, "Share of the rest for validation."),
    OverrideOption("--min-records", "min_total_records", click.INT, "Fewer usable records fail."),
    OverrideOption("--limit", "limit", click.INT, "Most records sampled for the run."),
    OverrideOption("--seed", "random_seed", click.INT, "Seed for sampling and splitting."),
    OverrideOption("--icl-examples", "icl_max_examples", click.INT, "Most ICL examples a record."),
    OverrideOption(
        "--example-selection",
        "example_selection",
        click.Choice([s.value for s in ExampleSelection]),
        "How in-context examples are chosen.",
    ),
    OverrideOption(
        "--min-score",
        "min_score_to_recommend",
        click.FloatRange(0, 1),
        "The workload's threshold for the interval's lower bound.",
    ),
    OverrideOption(
        "--tool-schema-compat",
        "tool_schema_compat",
        click.BOOL,
        "Rewrite \\d, \\w, \\s in tool schemas' patterns for every candidate (llama.cpp).",
    ),
    OverrideOption("--epochs", "epochs", click.INT, "LoRA training epochs."),
    OverrideOption("--batch-size", "batch_size", click.INT, "LoRA training batch size."),
    OverrideOption("--learning-rate", "learning_rate", click.FLOAT, "LoRA learning rate."),
    OverrideOption("--adapter-dim", "adapter_dim", click.INT, "LoRA rank."),
    OverrideOption(
        "--eval-type",
        "eval_types",
        click.Choice([t.value for t in EvalType]),
        "Evaluation to run per candidate; repeat for several.",
        multiple=True,
    ),
)

_FLAGS = {option.field: option.flag for option in OVERRIDE_OPTIONS}


def override_options(command: F) -> F:
    """Add the override options (and --candidate, --customize) to `command`."""
    decorators = [
        click.option("--candidate", "candidates", multiple=True, metavar="SPEC", help=_SPEC_HELP),
        click.option(
            "--customize/--no-customize",
            default=None,
            help="Train a LoRA adapter for every --candidate (needs customization_target). "
            "Default: where the spec names a customization_target.",
        ),
        *(
            click.option(
                option.flag,
                option.field,
                type=option.type,
                multiple=option.multiple,
                default=None,
                help=option.help,
            )
            for option in OVERRIDE_OPTIONS
        ),
    ]
    for decorate in reversed(decorators):
        command = decorate(command)
    return command


def build_overrides(
    values: Mapping[str, Any], candidates: Sequence[str], customize: bool | None
) -> RunOverrides:
    """The overrides from the options' `values` (by field name); UsageError when invalid."""
    if customize is not None and not candidates:
        raise click.UsageError("--customize/--no-customize need at least one --candidate")
    chosen = {
        field: value
        for field, value in values.items()
        if field in _FLAGS and value is not None and value != ()
    }
    if candidates:
        parsed = tuple(parse_candidate(spec, customize) for spec in candidates)
        names = [candidate.model_name for candidate in parsed]
        # The run config refuses them too, but only once the run has started.
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise click.UsageError(f"--candidate {', '.join(repeated)} given more than once")
        chosen["candidates"] = parsed
    with invalid_as_usage(_FLAGS):
        overrides = RunOverrides.model_validate(chosen)
    return overrides


def parse_candidate(spec: str, customize: bool | None = None) -> CandidateConfig:
    """A candidate from `MODEL[,FIELD=VALUE...]`; `customize`, when set, decides training.

    Commas and `=` cannot occur in model names, so they are safe separators.
    """
    model, *assignments = spec.split(",")
    fields: dict[str, object] = {"model_name": model.strip()}
    endpoint: dict[str, str] = {}
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in SPEC_FIELDS:
            raise click.UsageError(
                f"--candidate {spec!r}: expected FIELD=VALUE with FIELD one of "
                + ", ".join(SPEC_FIELDS)
            )
        if name.startswith(_ENDPOINT):
            endpoint[name.removeprefix(_ENDPOINT)] = value.strip()
        else:
            fields[name] = value.strip()
    if endpoint:
        fields["endpoint"] = endpoint
    # Naming a customization target is asking for customization.
    fields.setdefault("customization_enabled", "customization_target" in fields)
    if customize is not None:
        fields["customization_enabled"] = customize
    try:
        return CandidateConfig.model_validate(fields)
    except ValidationError as exc:
        raise click.UsageError(f"--candidate {spec!r}: {describe(exc)}") from None
