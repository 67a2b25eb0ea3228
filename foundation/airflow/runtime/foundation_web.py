"""Run before `airflow api-server` (simple auth): write the passwords file from the secret ECS
injected, so every api-server task has the same users and passwords.

SimpleAuthManager reads `[core] simple_auth_manager_passwords_file` (JSON {"user": "password"})
on every login, and for a configured user missing from it generates a password and prints it.
So every configured user must have a password in the secret, or this exits (naming the users,
never a password) before Airflow could print one.
"""

from __future__ import annotations

import json
import os
import sys

SECRET_ENV = "FOUNDATION_WEB_PASSWORDS"
USERS_ENV = "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"
FILE_ENV = "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"


def configured_users(spec: str) -> list[str]:
    return [entry.split(":", 1)[0] for entry in spec.split(",") if entry]


def passwords_file(secret: str, users: list[str]) -> dict[str, str]:
    """The file's content: exactly the configured users, each with its password."""
    try:
        passwords = json.loads(secret)
    except ValueError:
        raise SystemExit('the web passwords secret is not JSON {"user": "password"}') from None
    if not isinstance(passwords, dict):
        raise SystemExit('the web passwords secret is not a JSON object {"user": "password"}')
    missing = [u for u in users if not isinstance(passwords.get(u), str) or not passwords[u]]
    if missing:
        raise SystemExit(f"the web passwords secret has no password for: {', '.join(missing)}")
    return {user: passwords[user] for user in users}


def main() -> None:
    content = passwords_file(os.environ[SECRET_ENV], configured_users(os.environ[USERS_ENV]))
    path = os.environ[FILE_ENV]
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump(content, out)
    print(f"wrote {len(content)} user(s) to {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
