"""Wire the stacks: network -> data -> core -> worker shards."""

from __future__ import annotations

import os
import shutil
from collections import defaultdict

from foundation.errors import InvalidInput, Problem
from foundation.naming import worker_shard
from foundation.project import Dag, Project

# jsii (under aws-cdk-lib) prints a banner on every start on Node versions it no longer supports.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")


def _require_node() -> None:
    if shutil.which("node") is None:
        raise InvalidInput(
            [Problem(Path("node"), 0, "", "Node.js is not on PATH; aws-cdk-lib needs it (v20+)")]
        )


from pathlib import Path  # noqa: E402

import aws_cdk as cdk  # noqa: E402

from stacks.core import CoreStack  # noqa: E402
from stacks.data import DataStack  # noqa: E402
from stacks.network import NetworkStack  # noqa: E402
from stacks.workers import WorkersStack  # noqa: E402


def shards(project: Project) -> dict[int, list[Dag]]:
    assigned: dict[int, list[Dag]] = defaultdict(list)
    for dag in project.dags:
        assigned[worker_shard(dag.dag_id, project.deployment.worker_stacks)].append(dag)
    return dict(sorted(assigned.items()))


def build_app(project: Project, outdir: str | None = None) -> cdk.App:
    deployment = project.deployment
    options = {
        # cfn-lint checks every template once instead (foundation/checks)
        "builtin_cloud_formation_validation": False,
        "analytics_reporting": False,
        "stack_traces": False,
    }
    app = cdk.App(outdir=outdir, **options) if outdir else cdk.App(**options)
    env = cdk.Environment(account=deployment.account, region=deployment.region)
    common = {"env": env, "synthesizer": cdk.BootstraplessSynthesizer()}
    name = deployment.name
    network = NetworkStack(app, f"{name}-network", deployment=deployment, **common)
    data = DataStack(app, f"{name}-data", deployment=deployment, network=network, **common)
    CoreStack(app, f"{name}-core", deployment=deployment, network=network, data=data, **common)
    for shard, dags in shards(project).items():
        WorkersStack(
            app,
            f"{name}-workers-{shard:02d}",
            deployment=deployment,
            network=network,
            dags=dags,
            **common,
        )
    for key, value in {"foundation:project": name, **deployment.tags}.items():
        cdk.Tags.of(app).add(key, value)
    return app
