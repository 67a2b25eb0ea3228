"""`npx cdk synth` entry point (see cdk.json): the same app `foundation synth` builds."""

from pathlib import Path

from foundation.project import load_project
from stacks.app import build_app

build_app(load_project(Path.cwd())).synth()
