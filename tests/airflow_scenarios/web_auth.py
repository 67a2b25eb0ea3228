"""Real Airflow's auth managers with the api-server's generated settings.

Run by tests/test_airflow_auth.py in its own process, with AIRFLOW_HOME, a SQLite database, the
runtime files in $AIRFLOW_HOME/config and the api-server's environment already set:

    python -m tests.airflow_scenarios.web_auth simple <logins.json>
    python -m tests.airflow_scenarios.web_auth fab

simple: the public API's token endpoint (as other schedulers use it) for each login, then a
REST call with each token. fab: FAB's own app built from the generated webserver_config.py,
and one LDAP login attempt. The output (stdout, last line) is one JSON document.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def simple(logins: list[dict], dags_folder: str) -> dict:
    """Each login, then what another scheduler does with its token: list DAGs, trigger a run,
    read the run back."""
    from airflow.api_fastapi.app import create_app
    from airflow.utils import db
    from fastapi.testclient import TestClient

    from tests.airflow_scenarios.enforcement import reserialize

    db.initdb()
    (Path(dags_folder) / "sales_daily.py").write_text(ACCESS_DAGS["sales_daily.py"])
    reserialize("dags-folder")
    api = TestClient(create_app(apps="core"))
    out = []
    for login in logins:
        response = api.post("/auth/token", json=login)
        result = {"username": login["username"], "status": response.status_code}
        if response.status_code == 201:
            headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
            result["dags_status"] = api.get("/api/v2/dags", headers=headers).status_code
            run = api.post(
                "/api/v2/dags/sales_daily/dagRuns",
                headers=headers,
                json={"logical_date": None},
            )
            result["trigger_status"] = run.status_code
            if run.status_code == 200:
                run_id = run.json()["dag_run_id"]
                read = api.get(f"/api/v2/dags/sales_daily/dagRuns/{run_id}", headers=headers)
                result["run_state"] = read.json()["state"]
        out.append(result)
    return {"logins": out}


def fab() -> dict:
    from airflow.providers.fab.www.app import create_app

    app = create_app(enable_plugins=False)
    config = app.config
    security = app.appbuilder.sm
    with app.app_context():
        user = security.auth_user_ldap("alice", "not-her-password")
        auth_type = security.auth_type
    keys = (
        "AUTH_TYPE",
        "AUTH_LDAP_SERVER",
        "AUTH_LDAP_USE_TLS",
        "AUTH_LDAP_ALLOW_SELF_SIGNED",
        "AUTH_LDAP_TLS_DEMAND",
        "AUTH_LDAP_BIND_USER",
        "AUTH_LDAP_BIND_PASSWORD",
        "AUTH_LDAP_SEARCH",
        "AUTH_LDAP_SEARCH_FILTER",
        "AUTH_LDAP_UID_FIELD",
        "AUTH_LDAP_GROUP_FIELD",
        "AUTH_USER_REGISTRATION",
        "AUTH_USER_REGISTRATION_ROLE",
        "AUTH_ROLES_MAPPING",
        "AUTH_ROLES_SYNC_AT_LOGIN",
    )
    return {
        "config": {key: config.get(key) for key in keys},
        "security_manager_auth_type": auth_type,
        "ldap_login_against_unreachable_server": user is not None,
    }


ACCESS_DAGS = {
    # the manifest gives sales-analysts view and sales-oncall trigger; the file asks for more
    "sales_daily.py": """
from datetime import datetime
from airflow.sdk import DAG, task
with DAG("sales_daily", schedule=None, start_date=datetime(2024, 1, 1),
         access_control={"sales-analysts": {"DAGs": {"can_edit", "can_read"}}}):
    @task
    def extract():
        return 1
    extract()
""",
    "finance_close.py": """
from datetime import datetime
from airflow.sdk import DAG, task
with DAG("finance_close", schedule=None, start_date=datetime(2024, 1, 1)):
    @task
    def close():
        return 1
    close()
""",
}
USERS = {"ann": ["sales-analysts"], "otto": ["sales-oncall"], "vic": ["Viewer"]}


def access(dags_folder: str) -> dict:
    """The dag-processor's own path (parse with the cluster policies, serialize, FAB's sync of
    each DAG's access_control), then FAB's answers for users in each role."""
    from airflow.api_fastapi.auth.managers.models.resource_details import (
        DagAccessEntity,
        DagDetails,
    )
    from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager
    from airflow.providers.fab.www.app import create_app

    from tests.airflow_scenarios.enforcement import reserialize

    for name, text in ACCESS_DAGS.items():
        (Path(dags_folder) / name).write_text(text)
    reserialize("dags-folder")
    app = create_app(enable_plugins=False)
    manager = FabAuthManager()
    out = {}
    with app.app_context():
        security = app.appbuilder.sm
        for username, roles in USERS.items():
            security.add_user(
                username,
                username,
                "test",
                f"{username}@example.com",
                [security.find_role(r) for r in roles],
                password="x" * 12,
            )
        for username in USERS:
            user = security.find_user(username=username)
            for dag_id in ("sales_daily", "finance_close"):
                details = DagDetails(id=dag_id)
                out[f"{username}:{dag_id}"] = {
                    "read": manager.is_authorized_dag(method="GET", user=user, details=details),
                    "trigger": manager.is_authorized_dag(
                        method="POST",
                        user=user,
                        details=details,
                        access_entity=DagAccessEntity.RUN,
                    ),
                    "delete": manager.is_authorized_dag(
                        method="DELETE", user=user, details=details
                    ),
                }
        role_names = sorted(r.name for r in security.get_all_roles())
    return {"authorized": out, "roles": role_names}


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "simple":
        result = simple(json.loads(Path(sys.argv[2]).read_text()), sys.argv[3])
    elif mode == "access":
        result = access(sys.argv[2])
    else:
        result = fab()
    print(json.dumps(result, default=str))
