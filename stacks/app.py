"""Wire the stacks: network -> data -> core -> worker shards."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

import aws_cdk as cdk
from aws_cdk import aws_iam as iam

from foundation.config import Deployment
from foundation.project import ClusterInputs, Project, cluster_inputs, shards
from stacks import nag
from stacks.base import FoundationStack
from stacks.bootstrap import BootstrapStack
from stacks.network import NetworkStack
from stacks.workers import WorkersStack

if TYPE_CHECKING:
    from stacks.core import CoreStack
    from stacks.data import DataStack


def build_app(
    project: Project,
    outdir: str | None = None,
    only_shards: Collection[int] | None = None,
    cluster: bool = True,
) -> cdk.App:
    """The whole app; with `only_shards`, just those worker stacks; without `cluster`, empty
    stacks in place of network, data and core (foundation/incremental.py takes theirs from the
    previous assembly). Worker stacks name what they use of the cluster stacks, so they are the
    same either way."""
    deployment = project.deployment
    options = {
        # cfn-lint checks every template once instead (foundation/checks)
        "builtin_cloud_formation_validation": False,
        "analytics_reporting": False,
        "stack_traces": False,
        # No creationStack metadata: it names jsii's temporary folder, so no two synths of the
        # same app would write the same assembly (foundation/incremental.py relies on that).
        "context": {**nag.CONTEXT, "aws:cdk:disable-creation-stack-traces": True},
    }
    app = cdk.App(outdir=outdir, **options) if outdir else cdk.App(**options)
    nag.enable(app)
    ns = deployment.namespace
    if cluster:
        network, _, core = _cluster_stacks(app, deployment, cluster_inputs(project))
    else:
        network, _, core = (
            FoundationStack(app, n, deployment=deployment) for n in ns.cluster_stacks
        )
    for shard, dags in shards(project).items():
        if only_shards is not None and shard not in only_shards:
            continue
        workers = WorkersStack(
            app, ns.worker_stack(shard), deployment=deployment, shard=shard, dags=dags
        )
        # Worker stacks name core's execution role and log group: deploy them after core. This
        # orders deploys only; no value flows from core, so core never blocks removing a DAG.
        workers.add_stack_dependency(core)
        workers.add_stack_dependency(network)  # its exports: the VPC and private subnets
    for key, value in {**ns.tags, **deployment.tags}.items():
        cdk.Tags.of(app).add(key, value)
    if deployment.iam.permissions_boundary_arn:
        boundary = iam.ManagedPolicy.from_managed_policy_arn(
            core, "PermissionsBoundary", deployment.iam.permissions_boundary_arn
        )
        iam.PermissionsBoundary.of(app).apply(boundary)
    return app


def _cluster_stacks(
    app: cdk.App, deployment: Deployment, inputs: ClusterInputs
) -> tuple[NetworkStack, DataStack, CoreStack]:
    # Imported here: half a second of CDK modules a build of worker stacks alone never uses
    from stacks.core import CoreStack
    from stacks.data import DataStack

    network_name, data_name, core_name = deployment.namespace.cluster_stacks
    network = NetworkStack(
        app, network_name, deployment=deployment, dag_services=set(inputs.dag_services)
    )
    data = DataStack(app, data_name, deployment=deployment, network=network)
    core = CoreStack(
        app,
        core_name,
        deployment=deployment,
        network=network,
        data=data,
        dag_access=inputs.dag_access,
    )
    return network, data, core


def build_bootstrap_app(deployment: Deployment, outdir: str) -> cdk.App:
    app = cdk.App(
        outdir=outdir, analytics_reporting=False, stack_traces=False, context=dict(nag.CONTEXT)
    )
    nag.enable(app)
    stack = BootstrapStack(app, deployment.namespace.bootstrap_stack, deployment=deployment)
    for key, value in {**deployment.namespace.tags, **deployment.tags}.items():
        cdk.Tags.of(stack).add(key, value)
    return app
