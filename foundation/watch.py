"""`foundation synth --watch`: synthesize, then again each time an input changes, in one process
that keeps what a fresh `foundation synth` starts again every time (Python and the toolkit
imported, aws-cdk-lib's Node.js process, cfn-lint's rules loaded in warm workers).

Inputs are looked at from outside (`record.look`: sizes, times, inodes) a few times a second;
what a synth then rebuilds is decided, as always, by the hashes in the record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from foundation.record import look, toolkit_key
from foundation.synth import Session

POLL = 0.1  # seconds between looks at the inputs, at least; 10 times what a look costs
SETTLE = 0.2  # seconds the inputs must stay as they are before a synth (a save, a checkout)


class ToolkitChanged(Exception):
    """The toolkit's code, Python or a package it runs changed on disk since the watch started:
    this process still runs what it loaded, and must not record an assembly as built by the
    new one."""


def loop(
    root: Path,
    env: str | None,
    synthesize: Callable[[Session], None],
    waiting: Callable[[], None],
) -> None:
    """`synthesize`, then again after each change, until interrupted (KeyboardInterrupt) or
    the toolkit changes (ToolkitChanged)."""
    session = Session(toolkit_key())
    try:
        while True:
            # before the synth: what changes while it runs starts the next one at once
            seen = look(root)
            synthesize(session)
            session.warm(root, env)
            waiting()
            wait(root, seen, session.toolkit)
    finally:
        session.close()


def wait(root: Path, seen: tuple[object, ...], toolkit: str) -> None:
    """Until the inputs look different from `seen` and then stay as they are for SETTLE: an
    editor's save or a checkout can be many writes, and a file changed while a synth reads the
    project costs the next synth its stacks (synth._recorded_keys)."""
    start = time.perf_counter()
    now = look(root)
    poll = max(POLL, 10 * (time.perf_counter() - start))
    while now == seen:
        time.sleep(poll)
        now = look(root)
    while (settled := _after(SETTLE, root)) != now:
        now = settled
    if toolkit_key() != toolkit:
        raise ToolkitChanged(
            "foundation's code, Python or a package it runs changed since this watch started; "
            "start `foundation synth --watch` again to synthesize with it"
        )


def _after(seconds: float, root: Path) -> tuple[object, ...]:
    time.sleep(seconds)
    return look(root)
