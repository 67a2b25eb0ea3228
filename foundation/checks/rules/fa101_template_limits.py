from collections.abc import Iterator

from foundation.checks.model import Assembly, Finding, Rule, StackTemplate

MAX_RESOURCES = 500
MAX_TEMPLATE_BYTES = 1_000_000  # CloudFormation's limit for a template uploaded to S3


class TemplateLimits(Rule):
    id = "FA101"
    description = "Each stack within CloudFormation's limits: 500 resources, 1 MB of template"

    def check_stack(self, stack: StackTemplate, assembly: Assembly) -> Iterator[Finding]:
        if len(stack.resources) > MAX_RESOURCES:
            message = f"{len(stack.resources)} resources; CloudFormation takes {MAX_RESOURCES}"
            yield self.finding(stack.name, "", message)
        if stack.size > MAX_TEMPLATE_BYTES:
            message = (
                f"template is {stack.size:,} bytes; CloudFormation takes {MAX_TEMPLATE_BYTES:,}"
            )
            yield self.finding(stack.name, "", message)
