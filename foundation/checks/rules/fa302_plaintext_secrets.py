import json
import re
from collections.abc import Iterator
from typing import Any

from foundation.checks.model import Assembly, Finding, Rule, StackTemplate

# Names that hold a secret when they hold a value; an Airflow `_CMD` option holds the command
# that prints it instead. (`_SECRET` options are not exempt: `jwt_secret` is itself a secret.)
SECRET_NAME = re.compile(
    r"(?i)(pass|passwd|password|pwd|secret|secret_key|access_key|token|_pat|fernet_key|"
    r"private_key|api_key|sql_alchemy_conn|credentials?|broker_url|result_backend)$"
    r"|^airflow_conn_"
)
POINTER = re.compile(r"(?i)_cmd$")
# A broker or result backend that AWS authenticates by the task's role carries no credential:
# `sqs://` and `dynamodb://@<region>/<table>` with nothing before the @.
ROLE_AUTHENTICATED_URL = re.compile(r"^(sqs|dynamodb)://@?[a-z0-9-]*(/[^@\s]*)?$")
SECRET_PROPERTIES = {"MasterUserPassword", "Password", "AuthToken", "SecretString"}
DYNAMIC_REFERENCE = re.compile(r"^\{\{resolve:(secretsmanager|ssm-secure):")
# user:password@ in a URL; placeholders (%s, {x}, $x) that a program fills at run time are not
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@{$]*:(?!%s@)[^\s@{$]+@")


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}/{i}")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}/{key}")


def _urls_with_password(props: dict[str, Any]) -> Iterator[str]:
    """Where under Properties a string holds a URL with a password. Their JSON text is searched
    first, at C speed: escaping changes none of the characters the pattern stops at (/ : @ { $)
    and makes whitespace characters it does not stop at, so a string that matches still matches
    there, and most resources are ruled out without walking them."""
    text = json.dumps(props)
    if "://" not in text or not URL_WITH_PASSWORD.search(text):
        return
    for path, value in _strings(props):
        if URL_WITH_PASSWORD.search(value):
            yield path


def _literal(value: Any) -> bool:
    """A value written into the template, not a reference resolved by CloudFormation."""
    return isinstance(value, str) and not DYNAMIC_REFERENCE.match(value)


class PlaintextSecrets(Rule):
    id = "FA302"
    description = "No secret in a template in plaintext: secrets come from Secrets Manager"

    def check_stack(self, stack: StackTemplate, assembly: Assembly) -> Iterator[Finding]:
        for logical_id, resource in stack.template.get("Resources", {}).items():
            props = resource.get("Properties", {})
            for name in SECRET_PROPERTIES & props.keys():
                if _literal(props[name]):
                    yield self.finding(stack.name, logical_id, f"{name} holds a literal value")
            variables = [
                v
                for c in props.get("ContainerDefinitions", []) or []
                for v in c.get("Environment") or []
            ]
            variables += [
                {"Name": k, "Value": v}
                for k, v in ((props.get("Environment") or {}).get("Variables") or {}).items()
            ]
            if resource.get("Type") == "AWS::SSM::Parameter" and props.get("Name"):
                variables.append({"Name": str(props["Name"]), "Value": props.get("Value")})
            for variable in variables:
                name = variable.get("Name", "")
                value = variable.get("Value")
                if isinstance(value, str) and ROLE_AUTHENTICATED_URL.match(value):
                    continue
                if SECRET_NAME.search(name) and not POINTER.search(name) and value:
                    yield self.finding(
                        stack.name,
                        logical_id,
                        f"environment variable {variable['Name']} holds a value; inject it "
                        "as an ECS secret",
                    )
            for path in _urls_with_password(props):
                yield self.finding(
                    stack.name, logical_id, f"a URL with a password at Properties{path}"
                )
