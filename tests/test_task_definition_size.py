"""ECS takes task definitions up to 64 KiB. The core components' carry the runtime files and,
for the dag-processor with FAB, every DAG's access: both are delivered once, as SSM parameters,
so a core task definition stays under half the limit at 1,000 DAGs with access maps (the
cluster stacks alone are built here: worker stacks change nothing in core)."""

from __future__ import annotations

import json

import aws_cdk as cdk

from foundation.airflow import runtime_files, settings
from foundation.checks.rules.fa104_task_definition_size import MAX_TASK_DEFINITION_BYTES
from foundation.config import Deployment
from foundation.manifest import DagAccess
from foundation.project import load_project
from stacks.core import CoreStack
from stacks.data import DataStack
from stacks.network import NetworkStack
from tests.conftest import ROOT

LDAP = {
    "server": "ldaps://ldap.example.com",
    "bind_user": "cn=airflow,ou=services,dc=example,dc=com",
    "bind_password_secret": "acme/ldap-bind",
    "search": "ou=people,dc=example,dc=com",
}


def test_core_task_definitions_stay_under_half_of_ecs_limit_at_1000_dags(tmp_path) -> None:
    data = load_project(ROOT).deployment.model_dump()
    data["web"] = data["web"] | {"auth": {"manager": "fab", "ldap": LDAP}}
    deployment = Deployment.model_validate(data)
    access = {
        f"team_{i:03d}_pipeline_{i:04d}": DagAccess(
            view=[f"team-{i % 97:02d}-analysts"], trigger=[f"team-{i % 97:02d}-oncall"]
        )
        for i in range(1000)
    }
    app = cdk.App(outdir=str(tmp_path), context={"@aws-cdk/core:stackRelativeExports": True})
    network = NetworkStack(app, "n", deployment=deployment, dag_services=set())
    db = DataStack(app, "d", deployment=deployment, network=network)
    CoreStack(app, "c", deployment=deployment, network=network, data=db, dag_access=access)
    template = app.synth().get_stack_by_name("c").template
    sizes = {
        r["Properties"]["Family"]: len(json.dumps(r["Properties"], separators=(",", ":")))
        for r in template["Resources"].values()
        if r["Type"] == "AWS::ECS::TaskDefinition"
    }
    assert max(sizes.values()) < MAX_TASK_DEFINITION_BYTES / 2, sizes
    # what made them large now lives in SSM parameters of at most 4 KB, once each
    dag_processor = settings.cluster_component(deployment, "dag-processor", access)
    packed = dag_processor.delivered[settings.DAG_ACCESS_ENV]
    parts = [
        r["Properties"]["Value"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::SSM::Parameter"
        and "/foundation-dag-access/" in r["Properties"]["Name"]
    ]
    assert "".join(parts) == packed
    assert len(parts) == -(-len(packed) // runtime_files.CHUNK_CHARS) > 1
    # inline, the runtime files and this map alone would take the dag-processor past half
    runtime = dag_processor.delivered[runtime_files.RUNTIME_ENV]
    assert len(runtime) + len(packed) > MAX_TASK_DEFINITION_BYTES / 2


def test_the_runtime_archive_is_compressed() -> None:
    """Each file deflated: stored files made the Celery archive 75 KB and 19 SSM parameters,
    and the execution role's grants on them went over IAM's inline limit (FA102)."""
    import base64
    import io
    import zipfile

    from foundation.airflow import runtime_files

    for executor, names in runtime_files.FOR_COMPONENTS.items():
        archive = base64.b64decode(runtime_files.archive(names))
        infos = zipfile.ZipFile(io.BytesIO(archive)).infolist()
        assert {i.compress_type for i in infos} == {zipfile.ZIP_DEFLATED}, executor
        assert sum(i.compress_size for i in infos) < sum(i.file_size for i in infos) / 2
