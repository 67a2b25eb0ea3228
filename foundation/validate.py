"""`foundation validate`: the project as checked data, for people (a table) and tools (JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from foundation.project import Dag, Project, load_project


def run(root: Path, env: str | None) -> Project:
    return load_project(root, env)


def worker_size(project: Project, dag: Dag) -> dict[str, int]:
    return (dag.manifest.worker or project.deployment.worker_defaults).model_dump()


def dag_summary(project: Project, dag: Dag) -> dict[str, Any]:
    policy = dag.policy
    return {
        "dag_id": dag.dag_id,
        "owner": dag.manifest.owner,
        "file": str(dag.file.relative_to(project.root)),
        "worker": worker_size(project, dag),
        "services": dag.manifest.permissions.services(),
        "statement_count": len(policy.statements),
        "managed_policies": None if policy.does_not_fit else len(policy.policies),
        "worst_case_policy_chars": policy.worst_case_sizes,
        "escalations": policy.escalations,
    }


def as_json(project: Project) -> dict[str, Any]:
    deployment = project.deployment
    return {
        "project": str(project.root),
        "name": deployment.name,
        "region": deployment.region,
        "account": deployment.account,
        "partition": deployment.partition,
        "executor": deployment.airflow.executor,
        "dags": [
            dag_summary(project, dag)
            | {
                "statements": [s.document() for s in dag.policy.statements],
                "sources": {s.sid: list(s.sources) for s in dag.policy.statements},
            }
            for dag in project.dags
        ],
        "errors": [p.as_data() for p in project.findings],
        "warnings": [p.as_data() for p in project.warnings],
    }
