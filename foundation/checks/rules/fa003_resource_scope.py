from collections.abc import Iterator

from foundation.checks.launch import is_schedulers, namespace, scheduler_prefixes
from foundation.checks.model import Assembly, Finding, Rule, StackTemplate
from foundation.checks.policies import as_list, policy_documents, statements
from foundation.iam import arns
from foundation.naming import Namespace, any_deployments


def _whole_toolkit_bucket(arn: arns.Arn, ns: Namespace) -> bool:
    """`bucket/*` is one resource only for a bucket of the user's: a deployment's buckets hold
    every DAG's logs, every bundle's code and the templates, each granted by its prefix."""
    if arn.service != "s3":
        return False
    bucket, _, rest = arn.resource.partition("/")
    whole = arns.WILDCARD.match(rest) is not None
    return whole and (ns.owns("s3", bucket) or any_deployments("s3", bucket))


class ResourceScope(Rule):
    id = "FA003"
    description = "No resource pattern wider than one resource (all buckets, all secrets, name*)"

    def check_stack(self, stack: StackTemplate, assembly: Assembly) -> Iterator[Finding]:
        ns = namespace(assembly)
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
                    if (
                        arn is None
                        or arns.wider_than_one_resource(arn)
                        or _whole_toolkit_bucket(arn, ns)
                    ):
                        message = f"{resource!r} matches more than one resource"
                        yield self.finding(stack.name, doc.resource, message)
