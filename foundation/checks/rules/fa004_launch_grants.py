from collections.abc import Iterator
from typing import Any

from foundation.checks.launch import LAUNCH_ACTIONS, allowed_patterns, is_schedulers
from foundation.checks.model import Assembly, Finding, Rule, StackTemplate
from foundation.checks.policies import as_list, policy_documents, statements
from foundation.iam.arns import WILDCARD


class LaunchGrants(Rule):
    id = "FA004"
    description = (
        "iam:PassRole and ecs:RunTask only on named resources or the allow-listed prefixes"
    )

    def check_stack(self, stack: StackTemplate, assembly: Assembly) -> Iterator[Finding]:
        for doc in policy_documents(stack):
            allowed = allowed_patterns(assembly) if is_schedulers(stack, doc, assembly) else {}
            for st in statements(doc):
                actions = {str(a).lower() for a in as_list(st.get("Action", []))}
                for action in sorted(actions & LAUNCH_ACTIONS):
                    yield from self._check(stack, doc.resource, action, st, allowed)

    def _check(
        self,
        stack: StackTemplate,
        resource_id: str,
        action: str,
        st: dict[str, Any],
        allowed: dict[str, dict[str, Any]],
    ) -> Iterator[Finding]:
        condition = st.get("Condition", {})
        typed = condition.get("StringEquals", {}).get("iam:PassedToService")
        if action == "iam:passrole" and not typed:
            message = "iam:PassRole without StringEquals iam:PassedToService"
            yield self.finding(stack.name, resource_id, message)
        for resource in as_list(st.get("Resource", [])):
            if not isinstance(resource, str) or not WILDCARD.search(resource):
                continue
            if resource not in allowed:
                yield self.finding(
                    stack.name, resource_id, f"{action} on {resource!r}: not an allow-listed prefix"
                )
            elif not _contains(condition, allowed[resource]):
                yield self.finding(
                    stack.name,
                    resource_id,
                    f"{action} on {resource!r} lacks its condition {allowed[resource]}",
                )


def _contains(condition: dict[str, Any], required: dict[str, Any]) -> bool:
    return all(
        condition.get(op, {}).get(key) == value
        for op, pairs in required.items()
        for key, value in pairs.items()
    )
