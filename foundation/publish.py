"""`foundation publish-dags DIR`: a folder of DAG files into its S3 bundle, under the bundle's
prefix in the deployment's DAG bucket, once every DAG file is known to declare only dag_ids
whose manifests name that bundle. Nothing is uploaded unless every file passes."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from foundation.config import DagBundle, Deployment
from foundation.dag_files import declared
from foundation.errors import InvalidInput, Problem
from foundation.naming import bundle_prefix
from foundation.project import MANIFEST_DIR, Project, load_project


class UsageError(Exception):
    """A bundle that cannot be published to: named wrongly, or not an S3 bundle."""


@dataclass(frozen=True)
class Plan:
    bucket: str
    bundle: str
    uploads: dict[str, Path]  # key -> file


@dataclass(frozen=True)
class Published:
    plan: Plan
    stale: list[str]  # keys under the bundle's prefix that no file has
    deleted: bool  # and they were deleted (--delete)


def choose_bundle(deployment: Deployment, named: str | None) -> DagBundle:
    names = [b.name for b in deployment.bundles]
    if named is None and len(names) > 1:
        raise UsageError(f"--bundle: this deployment has several bundles: {', '.join(names)}")
    bundle = deployment.bundle_named(named or names[0])
    if bundle is None:
        raise UsageError(f"--bundle {named!r} is not configured; the bundles: {', '.join(names)}")
    if bundle.bundle == "git":
        raise UsageError(
            f"bundle {bundle.name!r} is a git repository ({bundle.url}, branch {bundle.branch}): "
            "push the DAG files there; the cluster pulls them"
        )
    return bundle


def _files(folder: Path) -> list[Path]:
    """Every file under the folder but hidden ones and Python's caches, as `foundation dev`
    syncs."""
    return sorted(
        path
        for path in folder.rglob("*")
        if (path.is_file() or path.is_symlink())
        and not any(p.startswith((".", "__pycache__")) for p in path.relative_to(folder).parts)
    )


def _problems(project: Project, bundle: str, path: Path) -> list[Problem]:
    if path.is_symlink():
        return [Problem(path, 0, "", "is a symbolic link: publish the file itself")]
    # what the dag-processor parses (Airflow's PythonDagImporter.list_dag_files): a .py file
    # in any case, and a zip whatever its name
    if path.suffix.lower() == ".zip" or (
        not path.name.endswith(".py") and zipfile.is_zipfile(path)
    ):
        return [Problem(path, 0, "", "a zip of DAGs cannot be read before it runs: unzip it")]
    if path.suffix.lower() != ".py":
        return []
    try:
        found = declared(path)
    except InvalidInput as error:
        return error.problems
    manifests = {d.dag_id: d for d in project.dags}
    problems = []
    for dag in found:
        manifest = manifests.get(dag.dag_id)
        if manifest is None:
            message = f"dag_id {dag.dag_id!r} has no manifest ({MANIFEST_DIR}/{dag.dag_id}.yaml)"
            problems.append(Problem(path, dag.line, "", message))
            continue
        owner = project.deployment.bundle_of(manifest.manifest.bundle)
        if owner != bundle:
            message = (
                f"dag_id {dag.dag_id!r} belongs to bundle {owner!r} (its manifest), not {bundle!r}"
            )
            problems.append(Problem(path, dag.line, "", message))
    return problems


def plan(project: Project, folder: Path, named: str | None) -> Plan:
    """What to upload where, or InvalidInput naming every file that may not go."""
    bundle = choose_bundle(project.deployment, named)
    if not folder.is_dir():
        raise InvalidInput([Problem(folder, 0, "", "not a folder of DAG files")])
    files = _files(folder)
    problems = [p for path in files for p in _problems(project, bundle.name, path)]
    if problems:
        raise InvalidInput(problems)
    if not files:
        raise InvalidInput([Problem(folder, 0, "", "holds no file to publish")])
    prefix = bundle_prefix(bundle.name)
    uploads = {f"{prefix}{path.relative_to(folder).as_posix()}": path for path in files}
    bucket = project.deployment.dags_bucket
    assert bucket is not None, "an S3 bundle means a DAG bucket"
    return Plan(bucket, bundle.name, uploads)


def _keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def run(
    root: Path,
    env: str | None,
    folder: Path,
    named: str | None,
    delete: bool,
    profile: str | None,
    region: str | None,
) -> Published:
    """Check every file (before any AWS call), then upload; with `delete`, remove the
    bundle's keys no file has."""
    project = load_project(root, env)
    checked = plan(project, folder, named)
    session = boto3.Session(profile_name=profile, region_name=region or project.deployment.region)
    s3 = session.client("s3")
    for key, path in checked.uploads.items():
        s3.put_object(Bucket=checked.bucket, Key=key, Body=path.read_bytes())
    existing = _keys(s3, checked.bucket, bundle_prefix(checked.bundle))
    stale = [k for k in existing if k not in checked.uploads]
    for key in stale if delete else []:
        s3.delete_object(Bucket=checked.bucket, Key=key)
    return Published(checked, stale, delete)
