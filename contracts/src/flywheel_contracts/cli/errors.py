"""Errors the CLI reports as one line on stderr, and its exit codes."""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from enum import IntEnum

import click
from pydantic import ValidationError


class ExitCode(IntEnum):
    """Distinct codes so scripts can tell a failed run from a broken command."""

    OK = 0
    ERROR = 1  # the command could not do its job: broker unreachable, unknown topic, ...
    USAGE = 2  # click's own code for bad arguments
    RUN_FAILED = 3
    TIMEOUT = 4
    INTERRUPTED = 130  # the shell's convention for Ctrl-C


class CliError(click.ClickException):
    """A failure explained to the user in one line; never a traceback."""

    exit_code = ExitCode.ERROR


class RunFailedError(CliError):
    exit_code = ExitCode.RUN_FAILED


class WatchTimeout(CliError):
    exit_code = ExitCode.TIMEOUT


def describe(exc: ValidationError, names: Mapping[str, str] | None = None) -> str:
    """One line for a validation error; `names` renames fields (e.g. to option flags)."""
    problems = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"])
        head = str(error["loc"][0]) if error["loc"] else ""
        if names and head in names:
            location = names[head]
        problems.append(f"{location}: {error['msg']}" if location else error["msg"])
    return "; ".join(problems)


@contextmanager
def invalid_as_usage(names: Mapping[str, str]) -> Iterator[None]:
    """Report a payload the options made invalid as a usage error naming those options."""
    try:
        yield
    except ValidationError as exc:
        raise click.UsageError(describe(exc, names)) from None
