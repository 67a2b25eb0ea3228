import json
from collections.abc import Iterator

from foundation.checks.model import Assembly, Finding, Rule, StackTemplate

# ECS refuses a RegisterTaskDefinition request over 64 KiB (its container definitions,
# environment included). References are counted as the template writes them: the ARNs they
# resolve to are about as long.
MAX_TASK_DEFINITION_BYTES = 65_536


def _size(value: object) -> int:
    return len(json.dumps(value, separators=(",", ":")))


class TaskDefinitionSize(Rule):
    id = "FA104"
    description = "Each ECS task definition within ECS's 64 KiB"

    def check_stack(self, stack: StackTemplate, assembly: Assembly) -> Iterator[Finding]:
        for logical_id, resource in stack.resources.items():
            if resource.get("Type") != "AWS::ECS::TaskDefinition":
                continue
            size = _size(resource.get("Properties", {}))
            if size > MAX_TASK_DEFINITION_BYTES:
                largest = max(
                    (
                        (_size(e), e.get("Name", "?"))
                        for c in resource["Properties"].get("ContainerDefinitions", [])
                        for e in c.get("Environment", [])
                    ),
                    default=(0, "none"),
                )
                message = (
                    f"task definition is {size:,} bytes; ECS takes {MAX_TASK_DEFINITION_BYTES:,} "
                    f"(largest environment variable: {largest[1]}, {largest[0]:,} bytes)"
                )
                yield self.finding(stack.name, logical_id, message)
