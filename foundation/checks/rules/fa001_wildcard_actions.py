from collections.abc import Iterator

from foundation.checks.model import Assembly, Finding, Rule, StackTemplate
from foundation.checks.policies import as_list, policy_documents, statements
from foundation.iam.arns import WILDCARD


class WildcardActions(Rule):
    id = "FA001"
    description = (
        "IAM statements name every action: no '*', 'service:*', 'service:Get*' or NotAction"
    )

    def check_stack(self, stack: StackTemplate, assembly: Assembly) -> Iterator[Finding]:
        for doc in policy_documents(stack):
            for st in statements(doc):
                if "NotAction" in st:
                    yield self.finding(
                        stack.name, doc.resource, "NotAction grants every other action"
                    )
                for action in as_list(st.get("Action", [])):
                    if WILDCARD.search(str(action)):
                        yield self.finding(stack.name, doc.resource, f"wildcard action {action!r}")
