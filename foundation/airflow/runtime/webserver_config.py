"""FAB's configuration for the api-server: logins against LDAP or Active Directory.

Delivered by airflow-foundation ([fab] config_file points here). The settings come from the
deployment's config (web.auth.ldap, as JSON in FOUNDATION_LDAP) and the bind password from
Secrets Manager (FOUNDATION_LDAP_BIND_PASSWORD, an ECS secret): this file holds neither.
FAB loads it with silent=True, so a missing file would quietly leave database logins on: it
ships in the same archive as everything the api-server starts with.
"""

from __future__ import annotations

import json
import os

from flask_appbuilder.const import AUTH_LDAP

_LDAP = json.loads(os.environ["FOUNDATION_LDAP"])

AUTH_TYPE = AUTH_LDAP
AUTH_LDAP_SERVER = _LDAP["server"]
AUTH_LDAP_USE_TLS = _LDAP["use_tls"]
AUTH_LDAP_ALLOW_SELF_SIGNED = False
AUTH_LDAP_TLS_DEMAND = True
AUTH_LDAP_BIND_USER = _LDAP["bind_user"]
AUTH_LDAP_BIND_PASSWORD = os.environ["FOUNDATION_LDAP_BIND_PASSWORD"]
AUTH_LDAP_SEARCH = _LDAP["search"]
AUTH_LDAP_SEARCH_FILTER = _LDAP["search_filter"] or ""
AUTH_LDAP_UID_FIELD = _LDAP["uid_field"]
AUTH_LDAP_GROUP_FIELD = _LDAP["group_field"]

# Roles follow LDAP groups at every login; a user in no mapped group gets registration_role.
AUTH_USER_REGISTRATION = True
AUTH_USER_REGISTRATION_ROLE = _LDAP["registration_role"]
AUTH_ROLES_MAPPING = _LDAP["roles_mapping"]
AUTH_ROLES_SYNC_AT_LOGIN = True
