import re
from collections.abc import Iterator
from typing import Any

from foundation.checks.model import Assembly, Finding, Rule, StackTemplate

# Names that hold a secret when they hold a value (an env var ending _CMD or _SECRET names where
# the value comes from instead).
SECRET_NAME = re.compile(
    r"(?i)(password|passwd|secret|token|fernet_key|private_key|api_key|sql_alchemy_conn|"
    r"credentials?)$"
)
SECRET_PROPERTIES = {"MasterUserPassword", "Password", "AuthToken", "SecretString"}
DYNAMIC_REFERENCE = re.compile(r"^\{\{resolve:(secretsmanager|ssm-secure):")
# user:password@ in a URL; placeholders (%s, {x}, $x) that a program fills at run time are not
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@%{$]+:[^/\s@%{$]+@")


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}/{i}")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}/{key}")


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
            for container in props.get("ContainerDefinitions", []) or []:
                for variable in container.get("Environment", []) or []:
                    if SECRET_NAME.search(variable.get("Name", "")) and variable.get("Value"):
                        yield self.finding(
                            stack.name,
                            logical_id,
                            f"environment variable {variable['Name']} holds a value; inject it "
                            "as an ECS secret",
                        )
            for path, text in _strings(props):
                if URL_WITH_PASSWORD.search(text):
                    yield self.finding(
                        stack.name, logical_id, f"a URL with a password at Properties{path}"
                    )
