import json
from collections.abc import Iterator

from foundation.checks.model import Assembly, Finding, Rule


class PublishableAssets(Rule):
    id = "FA202"
    description = (
        "No Docker image assets; every file asset is in the assembly for deploy to publish"
    )

    def check(self, assembly: Assembly) -> Iterator[Finding]:
        for name, artifact in assembly.manifest.get("artifacts", {}).items():
            if artifact.get("type") != "cdk:asset-manifest":
                continue
            path = assembly.root / artifact["properties"]["file"]
            assets = json.loads(path.read_text())
            for asset_id in assets.get("dockerImages", {}):
                yield self.finding(name, asset_id, "Docker image asset: the deploy cannot build it")
            for asset_id, asset in assets.get("files", {}).items():
                source = assembly.root / asset.get("source", {}).get("path", "")
                if not source.exists():
                    yield self.finding(name, asset_id, f"file asset {source.name} is missing")
