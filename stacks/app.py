"""Wire the stacks: network -> data -> core -> worker shards."""

from __future__ import annotations

from collections.abc import Collection

import aws_cdk as cdk
from aws_cdk import aws_iam as iam

from foundation.config import Deployment
from foundation.project import Project, dag_services, shards
from stacks import nag
from stacks.bootstrap import BootstrapStack
from stacks.core import CoreStack
from stacks.data import DataStack
from stacks.network import NetworkStack
from stacks.workers import WorkersStack


def build_app(
    project: Project, outdir: str | None = None, only_shards: Collection[int] | None = None
) -> cdk.App:
    """The whole app; with `only_shards`, network, data, core and just those worker stacks."""
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
    network_name, data_name, core_name = ns.cluster_stacks
    network = NetworkStack(
        app, network_name, deployment=deployment, dag_services=dag_services(project)
    )
    data = DataStack(app, data_name, deployment=deployment, network=network)
    core = CoreStack(
        app,
        core_name,
        deployment=deployment,
        network=network,
        data=data,
        dag_access={d.dag_id: d.manifest.access for d in project.dags if d.manifest.access},
    )
    for shard, dags in shards(project).items():
        if only_shards is not None and shard not in only_shards:
            continue
        workers = WorkersStack(
            app,
            ns.worker_stack(shard),
            deployment=deployment,
            network=network,
            dags=dags,
        )
        # Worker stacks name core's execution role and log group: deploy them after core. This
        # orders deploys only; no value flows from core, so core never blocks removing a DAG.
        workers.add_stack_dependency(core)
    for key, value in {**ns.tags, **deployment.tags}.items():
        cdk.Tags.of(app).add(key, value)
    if deployment.iam.permissions_boundary_arn:
        boundary = iam.ManagedPolicy.from_managed_policy_arn(
            core, "PermissionsBoundary", deployment.iam.permissions_boundary_arn
        )
        iam.PermissionsBoundary.of(app).apply(boundary)
    return app


def build_bootstrap_app(deployment: Deployment, outdir: str) -> cdk.App:
    app = cdk.App(
        outdir=outdir, analytics_reporting=False, stack_traces=False, context=dict(nag.CONTEXT)
    )
    nag.enable(app)
    stack = BootstrapStack(app, deployment.namespace.bootstrap_stack, deployment=deployment)
    for key, value in {**deployment.namespace.tags, **deployment.tags}.items():
        cdk.Tags.of(stack).add(key, value)
    return app
