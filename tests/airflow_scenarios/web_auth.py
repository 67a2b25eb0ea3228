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


def simple(logins: list[dict]) -> dict:
    from airflow.api_fastapi.app import create_app
    from airflow.utils import db
    from fastapi.testclient import TestClient

    db.initdb()
    api = TestClient(create_app(apps="core"))
    out = []
    for login in logins:
        response = api.post("/auth/token", json=login)
        result = {"username": login["username"], "status": response.status_code}
        if response.status_code == 201:
            token = response.json()["access_token"]
            dags = api.get("/api/v2/dags", headers={"Authorization": f"Bearer {token}"})
            result["dags_status"] = dags.status_code
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


if __name__ == "__main__":
    mode = sys.argv[1]
    result = simple(json.loads(Path(sys.argv[2]).read_text())) if mode == "simple" else fab()
    print(json.dumps(result, default=str))
