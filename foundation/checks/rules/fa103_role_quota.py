from collections.abc import Iterator

from foundation.checks.model import Assembly, Finding, Rule, StackTemplate


def role_count(stack: StackTemplate) -> int:
    return sum(r.get("Type") == "AWS::IAM::Role" for r in stack.resources.values())


class RoleQuota(Rule):
    id = "FA103"
    description = "The assembly's IAM roles fit the account's role quota (iam.role_quota)"

    def check(self, assembly: Assembly) -> Iterator[Finding]:
        quota = int(assembly.context.get("role_quota", "1000"))
        roles = sum(role_count(s) for s in assembly.stacks)
        if roles > quota:
            message = f"{roles} IAM roles; the account quota is {quota} (iam.role_quota)"
            yield self.finding("assembly", "", message)
