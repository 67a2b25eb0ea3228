import json
from collections import defaultdict
from collections.abc import Iterator

from foundation.checks.model import Assembly, Finding, Rule, StackTemplate
from foundation.checks.policies import policy_documents, worst_case_length
from foundation.iam.sizing import MANAGED_POLICY_MAX_CHARS

ROLE_INLINE_MAX_CHARS = 10_240


class IamLimits(Rule):
    id = "FA102"
    description = (
        "IAM limits at worst case: policy sizes, inline total and managed policies per role"
    )

    def check_stack(self, stack: StackTemplate, assembly: Assembly) -> Iterator[Finding]:
        limit = int(assembly.context.get("max_managed_policies_per_role", "10"))
        inline: dict[str, int] = defaultdict(int)
        managed: dict[str, int] = defaultdict(int)
        for doc in policy_documents(stack):
            size = worst_case_length(json.dumps(doc.document, separators=(",", ":")))
            if doc.kind == "managed":
                if size > MANAGED_POLICY_MAX_CHARS:
                    message = f"managed policy is {size:,} characters at worst case"
                    yield self.finding(stack.name, doc.resource, message)
                for role in doc.roles:
                    managed[role] += 1
            else:
                for role in doc.roles:
                    inline[role] += size
        for logical_id, resource in stack.resources.items():
            if resource.get("Type") == "AWS::IAM::Role":
                arns = resource.get("Properties", {}).get("ManagedPolicyArns", [])
                managed[logical_id] += len(arns)
        for role, count in managed.items():
            if count > limit:
                message = f"{count} managed policies attached; a role takes {limit}"
                yield self.finding(stack.name, role, message)
        for role, size in inline.items():
            if size > ROLE_INLINE_MAX_CHARS:
                message = f"inline policies total {size:,} characters at worst case"
                yield self.finding(stack.name, role, message)
