"""`python -m foundation`: the `foundation` command."""

from foundation.cli import app

app(prog_name="foundation")
