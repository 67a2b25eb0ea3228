"""What every verb shares to show itself: the consoles (results on stdout, everything else on
stderr), `--json` output, errors as text or JSON, and progress on a terminal only."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from foundation.errors import Problem

if TYPE_CHECKING:
    from botocore.exceptions import BotoCoreError, ClientError

# Outside a terminal (a pipe, a CI log) nothing is cut or folded: tables are as wide as their
# longest ARN. COLUMNS, when set, still wins.
UNLIMITED_WIDTH = 100_000

CREDENTIALS_HINT = (
    "choose credentials with --profile NAME or AWS_PROFILE (or AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY); for an SSO profile, run `aws sso login --profile NAME` first"
)
# Error codes AWS answers with when the caller's credentials are unknown, wrong or expired.
REFUSED_CREDENTIALS = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "InvalidAccessKeyId",
        "UnrecognizedClientException",
        "RequestExpired",
        "SignatureDoesNotMatch",
        "AuthFailure",
    }
)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except ValueError:  # closed
        return False


def console_for(stream: TextIO) -> Console:
    """A console on `stream` as it is now; rich reads NO_COLOR and FORCE_COLOR when it is made."""
    width = None if _is_terminal(stream) or "COLUMNS" in os.environ else UNLIMITED_WIDTH
    return Console(file=stream, emoji=False, highlight=False, width=width)


def stdout_console() -> Console:
    return console_for(sys.stdout)


def stderr_console() -> Console:
    return console_for(sys.stderr)


def print_json(data: Any) -> None:
    """A verb's result with --json: one JSON document on stdout, nothing else there."""
    print(json.dumps(data, indent=2))


def error_data(problem: Problem | str) -> dict[str, Any]:
    """One error as --json shows it; file, line and field are null where nothing pins it."""
    if isinstance(problem, Problem):
        return problem.as_data()
    return {"file": None, "line": None, "field": None, "message": str(problem)}


def print_errors(err: Console, problems: list[Problem] | list[str], as_json: bool) -> None:
    if as_json:
        print_json({"errors": [error_data(p) for p in problems]})
        return
    for problem in problems:
        report_error(err, problem)


def report_error(err: Console, problem: object) -> None:
    """User text is printed as text: never read as rich markup."""
    err.print(Text.assemble(("error", "red"), f": {problem}"), soft_wrap=True)


def aws_error_text(error: BotoCoreError | ClientError) -> str:
    """What AWS said, and the next step when it is about the credentials."""
    from botocore.exceptions import (  # here: botocore takes a tenth of a second to import
        ClientError,
        NoCredentialsError,
        PartialCredentialsError,
        ProfileNotFound,
        SSOError,
        TokenRetrievalError,
    )

    missing = (
        NoCredentialsError,
        PartialCredentialsError,
        ProfileNotFound,
        SSOError,
        TokenRetrievalError,
    )
    if isinstance(error, missing):
        return f"AWS: no usable credentials ({error}); {CREDENTIALS_HINT}"
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        if code in REFUSED_CREDENTIALS:
            return f"AWS refused the credentials ({error}); they may have expired: " + (
                CREDENTIALS_HINT
            )
    return f"AWS: {error}"


@contextmanager
def progress(err: Console, what: str) -> Iterator[Callable[[str], None]]:
    """A spinner naming the stage under way, on stderr, only when stderr is a terminal; the
    caller reports each stage through the function it gets."""
    if not err.is_terminal:
        yield lambda stage: None
        return
    spinner = Spinner("dots", text=what)
    with Live(spinner, console=err, transient=True) as live:

        def show(stage: str) -> None:
            spinner.update(text=f"{what}: {stage}")
            live.refresh()  # every stage shows, however short

        yield show
