from collections.abc import Iterator

from foundation.checks.model import Assembly, Finding, Rule, StackTemplate
from foundation.checks.policies import as_list, policy_documents, statements
from foundation.iam.catalog import lookup


class StarResource(Rule):
    id = "FA002"
    description = "Resource '*' only for actions that take no resource-level permissions"

    def check_stack(self, stack: StackTemplate, assembly: Assembly) -> Iterator[Finding]:
        for doc in policy_documents(stack):
            for st in statements(doc):
                if "NotResource" in st:
                    yield self.finding(
                        stack.name, doc.resource, "NotResource reaches everything else"
                    )
                if "*" not in as_list(st.get("Resource", [])):
                    continue
                for action in as_list(st.get("Action", [])):
                    info = lookup(str(action))
                    if info is None:
                        message = f"{action} is not in the IAM action database"
                        yield self.finding(stack.name, doc.resource, message)
                    elif info.arn_formats:
                        message = f"Resource '*' for {info.name}, which takes resource ARNs"
                        yield self.finding(stack.name, doc.resource, message)
