"""The toolkit's own rules, one per module; `ALL` is what every synth runs."""

from foundation.checks.rules.fa001_wildcard_actions import WildcardActions
from foundation.checks.rules.fa002_star_resource import StarResource
from foundation.checks.rules.fa003_resource_scope import ResourceScope
from foundation.checks.rules.fa004_launch_grants import LaunchGrants
from foundation.checks.rules.fa005_unreadable_policies import UnreadablePolicies
from foundation.checks.rules.fa006_attached_policies import AttachedPolicies
from foundation.checks.rules.fa101_template_limits import TemplateLimits
from foundation.checks.rules.fa102_iam_limits import IamLimits
from foundation.checks.rules.fa103_role_quota import RoleQuota
from foundation.checks.rules.fa104_task_definition_size import TaskDefinitionSize
from foundation.checks.rules.fa105_execution_role_reads import ExecutionRoleReads
from foundation.checks.rules.fa201_lookups import NoLookups
from foundation.checks.rules.fa202_assets import PublishableAssets
from foundation.checks.rules.fa301_cdk_nag import CdkNag
from foundation.checks.rules.fa302_plaintext_secrets import PlaintextSecrets

ALL = [
    WildcardActions(),
    StarResource(),
    ResourceScope(),
    LaunchGrants(),
    UnreadablePolicies(),
    AttachedPolicies(),
    TemplateLimits(),
    IamLimits(),
    RoleQuota(),
    TaskDefinitionSize(),
    ExecutionRoleReads(),
    NoLookups(),
    PublishableAssets(),
    CdkNag(),
    PlaintextSecrets(),
]
