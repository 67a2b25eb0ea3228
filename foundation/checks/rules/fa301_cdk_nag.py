import json
from collections.abc import Iterator

from foundation.checks.model import Assembly, Finding, Rule

REPORT_FILE = "validation-report.json"


class CdkNag(Rule):
    id = "FA301"
    description = "cdk-nag's AwsSolutions pack has no unacknowledged finding on any stack"

    def check(self, assembly: Assembly) -> Iterator[Finding]:
        report = assembly.root / REPORT_FILE
        if not report.is_file():
            return  # no finding at all: CDK writes the report only when a plugin reports one
        for plugin in json.loads(report.read_text()).get("pluginReports", []):
            for violation in plugin.get("violations", []):
                for construct in violation.get("violatingConstructs", []):
                    path = construct.get("constructPath", "")
                    stack, _, resource = path.partition("/")
                    message = f"{violation['ruleName']}: {violation.get('description', '')}"
                    yield self.finding(stack, resource, message)
