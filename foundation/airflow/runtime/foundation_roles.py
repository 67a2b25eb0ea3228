"""Run before the dag-processor (FAB): write the roles DAG manifests name, for `airflow roles
import`, each with the permissions a DAG-scoped role needs besides its DAGs'.

Those are FAB's own Viewer permissions without reading every DAG, plus the writes on runs and
task instances that FAB allows only together with edit on the DAG itself: so a role sees and
changes nothing of a DAG its manifest access does not name. `roles import` skips roles that
exist, so this never changes a role an administrator has edited.
"""

from __future__ import annotations

import json
import os

ROLES_ENV = "FOUNDATION_DAG_ROLES"
FILE_ENV = "FOUNDATION_ROLES_FILE"
EVERY_DAG = ("can_read", "DAGs")
WRITES_UNDER_DAG_EDIT = [
    ("can_create", "DAG Runs"),
    ("can_edit", "DAG Runs"),
    ("can_edit", "Task Instances"),
]


def base_permissions() -> list[tuple[str, str]]:
    from airflow.providers.fab.auth_manager.security_manager.override import (
        FabAirflowSecurityManagerOverride,
    )

    viewer = FabAirflowSecurityManagerOverride.VIEWER_PERMISSIONS
    return [p for p in viewer if p != EVERY_DAG] + WRITES_UNDER_DAG_EDIT


def import_file(roles: list[str], permissions: list[tuple[str, str]]) -> list[dict[str, str]]:
    """`airflow roles export`'s format: one entry per role and resource, actions joined."""
    by_resource: dict[str, list[str]] = {}
    for action, resource in permissions:
        by_resource.setdefault(resource, []).append(action)
    return [
        {"name": role, "resource": resource, "action": ",".join(sorted(actions))}
        for role in roles
        for resource, actions in sorted(by_resource.items())
    ]


def main() -> None:
    roles = json.loads(os.environ[ROLES_ENV])
    with open(os.environ[FILE_ENV], "w") as out:
        json.dump(import_file(roles, base_permissions()), out)


if __name__ == "__main__":
    main()
