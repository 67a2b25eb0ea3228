from collections.abc import Iterator

from foundation.checks.launch import is_schedulers, scheduler_prefixes
from foundation.checks.model import Assembly, Finding, Rule, StackTemplate
from foundation.checks.policies import as_list, policy_documents, statements
from foundation.iam import arns


class ResourceScope(Rule):
    id = "FA003"
    description = "No resource pattern wider than one resource (all buckets, all secrets, name*)"

    def check_stack(self, stack: StackTemplate, assembly: Assembly) -> Iterator[Finding]:
        for doc in policy_documents(stack):
            schedulers = is_schedulers(stack, doc, assembly)
            allowed = scheduler_prefixes(assembly) if schedulers else set()
            for st in statements(doc):
                for resource in as_list(st.get("Resource", [])):
                    if not isinstance(resource, str):
                        continue  # FA005 reports it
                    if resource == "*" or resource in allowed or not arns.WILDCARD.search(resource):
                        continue
                    arn = arns.parse(resource)
                    if arn is None or arns.wider_than_one_resource(arn):
                        message = f"{resource!r} matches more than one resource"
                        yield self.finding(stack.name, doc.resource, message)
