"""Wire the stacks: network -> data -> core -> worker shards."""

from __future__ import annotations

from collections import defaultdict

import aws_cdk as cdk
from aws_cdk import aws_iam as iam

from foundation.config import Deployment
from foundation.naming import worker_shard
from foundation.project import Dag, Project, dag_services
from stacks import nag
from stacks.bootstrap import BootstrapStack
from stacks.core import CoreStack
from stacks.data import DataStack
from stacks.network import NetworkStack
from stacks.workers import WorkersStack


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
        "context": dict(nag.CONTEXT),
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
