from collections.abc import Iterator

from foundation.checks.model import Assembly, Finding, Rule, StackTemplate
from foundation.checks.policies import as_list, resolve

# Policies a principal may carry by ARN (an AWS managed policy, or one made elsewhere), whose
# statements no rule can read: each needs a reason here. None does today.
ATTACHABLE: dict[str, str] = {}
PRINCIPALS = ("AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group")


class AttachedPolicies(Rule):
    id = "FA006"
    description = "No policy attached by ARN (ManagedPolicyArns) unless allow-listed with a reason"

    def check_stack(self, stack: StackTemplate, assembly: Assembly) -> Iterator[Finding]:
        for logical_id, resource in stack.resources.items():
            if resource.get("Type") not in PRINCIPALS:
                continue
            arns = resource.get("Properties", {}).get("ManagedPolicyArns", [])
            for arn in as_list(resolve(arns)):
                if str(arn) in ATTACHABLE:
                    continue
                message = (
                    f"ManagedPolicyArns attaches {arn}: no rule can read what it grants "
                    "(attach a policy the stacks write, or allow-list it in FA006 with why)"
                )
                yield self.finding(stack.name, logical_id, message)
