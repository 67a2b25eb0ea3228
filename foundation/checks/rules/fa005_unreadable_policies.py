from collections.abc import Iterator

from foundation.checks.model import Assembly, Finding, Rule, StackTemplate
from foundation.checks.policies import policy_documents, unreadable


class UnreadablePolicies(Rule):
    id = "FA005"
    description = "Every IAM policy value is readable (no Fn::If, Fn::FindInMap, Fn::Split...)"

    def check_stack(self, stack: StackTemplate, assembly: Assembly) -> Iterator[Finding]:
        for doc in policy_documents(stack):
            for what in unreadable(doc):
                message = f"{what}: the checks cannot tell what it grants; write it out"
                yield self.finding(stack.name, doc.resource, message)
