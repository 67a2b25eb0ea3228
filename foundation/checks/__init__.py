"""Checks on a synthesized cloud assembly: cfn-lint, the toolkit's own rules, and limits.

Checks read only the assembly (templates and manifest.json), never the models, so they judge
what would really be deployed, including anything CDK added on its own.
"""
