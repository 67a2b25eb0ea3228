from collections.abc import Iterator

from foundation.checks.model import Assembly, Finding, Rule


class NoLookups(Rule):
    id = "FA201"
    description = "Synthesis needed no AWS lookup: manifest.json reports no missing context"

    def check(self, assembly: Assembly) -> Iterator[Finding]:
        for missing in assembly.manifest.get("missing", []):
            message = f"needs a context lookup ({missing.get('key')}); give the ids in config"
            yield self.finding("assembly", "", message)
