"""Every verb's exit codes: one table, documented once (README, "Exit codes").

`diff` (and any verb that reports pending changes) never reuses an error's code for them, as
`terraform plan -detailed-exitcode` does not; 2 stays click's usage code, so pending changes
take 3.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # done; nothing would change (diff); yes (permissions --can)
    ERROR = 1  # AWS refused or failed, an account or stack not ready, a stack that failed
    INVALID_INPUT = 2  # the config, a manifest or the command line: fix it and run again
    CHANGES = 3  # diff: a deploy would change something
    DENIED = 4  # permissions --can: no statement allows it; check-dags: a task needs more
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)
