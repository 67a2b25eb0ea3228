"""The deployment: `config/foundation.yaml`, optionally overlaid by `config/<env>.yaml`."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Discriminator, Field, Tag, model_validator

from foundation.fields import (
    AccountId,
    Cidr,
    DagId,
    Model,
    Region,
    Rule,
    SecretName,
    _matching,
    check_counts,
    check_fargate_size,
    fargate_schema,
)
from foundation.naming import (
    BUNDLE_NAME,
    DEFAULT_BUNDLE,
    PROJECT_TAG,
    ROLE_NAME_MAX,
    TAG_PREFIX,
    DagNames,
    Namespace,
    any_deployments,
    dag_processor,
)
from foundation.triggers import REFUSED_CLASSES, REFUSED_PREFIXES, allowed, static_refusal

DEFAULT_IMAGE = "apache/airflow:3.3.2"

# Longest values an ARN can take, for sizing policies at their worst case.
WORST_CASE_PARTITION = "aws-us-gov"
WORST_CASE_REGION = "ap-southeast-14"
WORST_CASE_ACCOUNT = "123456789012"

_PARTITIONS = {
    "cn-": "aws-cn",
    "us-gov-": "aws-us-gov",
    "us-isob-": "aws-iso-b",
    "us-isof-": "aws-iso-f",
    "eu-isoe-": "aws-iso-e",
    "us-iso-": "aws-iso",
    "eusc-": "aws-eusc",
}

ProjectName = Annotated[
    str,
    _matching(
        r"(?!sg-)(?!aws)(?!ssm)(?!foundation$)(?!dags$)(?!.*--)[a-z][a-z0-9-]{1,18}[a-z0-9]",
        "a lowercase name of 3-20 letters, digits, '-' (not starting 'sg-', 'aws' or 'ssm': "
        "security group and SSM parameter names may not; not 'foundation', the bootstrap's; "
        "not 'dags', the segment after a name in DAG role paths; "
        "no '--': it separates the name from what it names)",
    ),
]
AvailabilityZone = Annotated[str, _matching(r"[a-z]{2,4}(-[a-z]+)+-\d{1,2}[a-z]", "an AZ name")]
VpcId = Annotated[str, _matching(r"vpc-[0-9a-f]{8,17}", "a VPC id (vpc-...)")]
SubnetId = Annotated[str, _matching(r"subnet-[0-9a-f]{8,17}", "a subnet id (subnet-...)")]
PrefixListId = Annotated[str, _matching(r"pl-[0-9a-f]{8,17}", "a prefix list id (pl-...)")]
CertificateArn = Annotated[
    str,
    _matching(r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}", "an ACM ARN"),
]
BoundaryArn = Annotated[
    str,
    _matching(
        r"(?=.{1,168}$)arn:aws[a-z-]*:iam::(\d{12}|aws):policy/([\w+=,.@-]+/)*[\w+=,.@-]{1,128}",
        "an IAM managed policy ARN of at most 168 characters "
        "(arn:<partition>:iam::<account>:policy/<path/><name>)",
    ),
]
# Lengths capped at what the bootstrap's service-role policies are sized for (WORST_CASE in
# foundation/iam/deployer.py): 62 characters of path, a 168-character boundary ARN.
# Two deployments in one account with different values never reach each other's roles: no '--'
# in either (a name's first '--' ends it), no 'dags' segment in a path (where a deployment's DAG
# roles live: /<path>/<name>/dags/), and a prefix ending in a character no name holds, so
# `<prefix><name>` reads one way only ('org-' + 'acme' would be the name 'org-acme').
RolePath = Annotated[
    str,
    _matching(
        r"(?=.{1,62}$)(?!.*--)(?!.*/dags/)/([A-Za-z0-9+=,.@_-]+/){0,8}",
        "an IAM path of at most 62 characters: '/' or '/a/b/' (letters, digits, +=,.@_-), "
        "without '--' or a 'dags' segment (a deployment's DAG roles live under <path><name>/dags/)",
    ),
]
RoleNamePrefix = Annotated[
    str,
    _matching(
        r"(?!.*--)([A-Za-z0-9+=,.@_-]{0,15}[+=,.@_])?",
        "a role name prefix of at most 16 characters (letters, digits, +=,.@_-) without '--', "
        "ending in one of + = , . @ _ so that no deployment's name can continue it ('org_')",
    ),
]
InstanceClass = Annotated[str, _matching(r"db\.[a-z0-9]+\.[a-z0-9]+", "an RDS instance class")]
Image = Annotated[
    str, _matching(r"[a-z0-9./_-]+(:[A-Za-z0-9._-]{1,128})?(@sha256:[0-9a-f]{64})?", "an image")
]
GitUrl = Annotated[
    str,
    _matching(
        r"https://[^@/\s]+/\S+",
        "an https git URL without credentials (put those in credentials_secret; components "
        "reach the repository over HTTPS only)",
    ),
]
BundleName = Annotated[
    str,
    _matching(
        BUNDLE_NAME,
        "a bundle name: a lowercase letter, then up to 29 lowercase letters, digits or '_' (it "
        "names the bundle's S3 prefix, dag-processor and git connection)",
    ),
]
TagKey = Annotated[
    str,
    _matching(
        rf"(?!aws:)(?!{TAG_PREFIX})[\w .:/=+@-]{{1,128}}",
        f"a tag key (1-128 chars, not 'aws:' or '{TAG_PREFIX}': the toolkit's own, "
        f"{PROJECT_TAG} scopes the CloudFormation service role)",
    ),
]
TagValue = Annotated[str, _matching(r"[\w .:/=+@-]{0,256}", "a tag value (0-256 chars)")]


def _deferrable_trigger(value: str) -> str:
    refused = static_refusal(value)
    if refused:
        raise ValueError(refused)
    return value


TriggerClasspath = Annotated[
    str,
    _matching(
        r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+",
        "a trigger's exact classpath (package.module.ClassName)",
    ),
    Rule(
        _deferrable_trigger,
        "^"
        + "".join(f"(?!{re.escape(p)})" for p in REFUSED_PREFIXES)
        + "".join(f"(?!{re.escape(c)}$)" for c in REFUSED_CLASSES),
    ),
]


# With network.private_endpoints, the services the cluster always reaches by endpoint, and those
# a DAG's grants add an interface endpoint for (by IAM action prefix). IAM itself takes no call
# from a task (PassRole is checked by the service the role is passed to).
BASE_ENDPOINT_SERVICES = {"s3", "sqs", "logs", "ecr", "secretsmanager", "sts", "kms", "ssm", "ecs"}
DAG_ENDPOINT_SERVICES = {
    "athena",
    "glue",
    "elasticmapreduce",
    "redshift-data",
    "redshift",
    "sns",
    "lambda",
    "dynamodb",
}
NO_CALL_SERVICES = {"iam"}


STOCK_IMAGES = ("apache/airflow", "docker.io/apache/airflow", "public.ecr.aws/apache/airflow")
CELERY_IMAGE_CONTENTS = (
    "pycurl (kombu's SQS transport cannot run without it), apache-airflow-providers-celery "
    ">= 3.26 and celery < 5.7"
)
CELERY_IMAGE_NEEDS = (
    f"executor: celery needs an image with {CELERY_IMAGE_CONTENTS}; the official "
    "apache/airflow image has no pycurl: build docker/Dockerfile (written by foundation init: FROM "
    "apache/airflow, adds them) and set airflow.image to the result"
)


def is_stock_image(image: str) -> bool:
    return image.split(":", 1)[0].split("@", 1)[0] in STOCK_IMAGES


def partition_of(region: str) -> str:
    for prefix, partition in _PARTITIONS.items():
        if region.startswith(prefix):
            return partition
    return "aws"


class AirflowConfig(Model):
    image: Image = Field(
        default=DEFAULT_IMAGE,
        description="The container image every Airflow component and task runs. Celery mode "
        "needs one with pycurl (docker/Dockerfile builds it); with private_endpoints, one in ECR.",
        examples=[DEFAULT_IMAGE],
    )
    executor: Literal["ecs", "celery"] = Field(
        default="ecs",
        description="ecs: one Fargate task per Airflow task. celery: a queue and a worker "
        "service per DAG.",
        examples=["ecs"],
    )
    unmanaged_dags: Literal["refuse", "baseline"] = Field(
        default="refuse",
        description="A DAG with no manifest: refused by the executor, or run under a shared "
        "identity with no grants (baseline).",
        examples=["refuse"],
    )
    # checked at validate to import to a trigger that loads no AWS SDK
    triggers: list[TriggerClasspath] = Field(
        default_factory=list,
        max_length=50,
        description="Trigger classes a task may defer to besides the defaults: exact "
        "classpaths, as the trigger's serialize() returns them, of packages in the image.",
        examples=[["acme_triggers.warehouse.LoadFinishedTrigger"]],
    )

    @property
    def deferrable_triggers(self) -> list[str]:
        return allowed(self.triggers)


SUBNET_ADDRESSES_PER_AZ = 256 + 4096 + 256


class NetworkConfig(Model):
    """Either a VPC to create (cidr) or an existing one (vpc_id and subnet ids)."""

    availability_zones: list[AvailabilityZone] = Field(
        min_length=2,
        max_length=6,
        description="2 to 6 availability zones of the region, named (synthesis makes no AWS "
        "lookup).",
        examples=[["us-east-1a", "us-east-1b"]],
    )
    cidr: Cidr | None = Field(
        default=None,
        description="The IPv4 block of the VPC to create (default 10.0.0.0/16): a public /24, a "
        "private /20 and a database /24 per zone.",
        examples=["10.40.0.0/16"],
    )
    # at least one: without VPC endpoints, private subnets reach AWS APIs only through NAT
    nat_gateways: int | None = Field(
        default=None,
        ge=1,
        le=6,
        description="NAT gateways of the VPC to create (default 1).",
        examples=[2],
    )
    vpc_id: VpcId | None = Field(
        default=None,
        description="An existing VPC to use instead of creating one (then give subnet ids, "
        "not cidr).",
        examples=["vpc-0a1b2c3d4e5f60718"],
    )
    private_subnet_ids: list[SubnetId] = Field(
        default_factory=list,
        description="With vpc_id: one private subnet per availability zone, in the same order.",
        examples=[["subnet-0a1b2c3d4e5f60718", "subnet-1a2b3c4d5e6f70819"]],
    )
    public_subnet_ids: list[SubnetId] = Field(
        default_factory=list,
        description="With vpc_id: one public subnet per availability zone (needed for "
        "web.internal: false).",
        examples=[["subnet-2a3b4c5d6e7f80910", "subnet-3a4b5c6d7e8f90a1b"]],
    )
    # DAG tasks may then reach only the endpoints, S3 through its gateway and what their
    # manifest's network.egress adds
    private_endpoints: bool = Field(
        default=False,
        description="VPC endpoints for every AWS API the cluster and its DAGs use, in the VPC "
        "this toolkit creates; needs s3_prefix_list_id and an ECR image.",
        examples=[False],
    )
    s3_prefix_list_id: PrefixListId | None = Field(
        default=None,
        description="With private_endpoints: the id of the prefix list com.amazonaws.<region>.s3 "
        "(aws ec2 describe-managed-prefix-lists).",
        examples=["pl-63a5400a"],
    )

    @model_validator(mode="after")
    def _endpoints(self) -> NetworkConfig:
        if not self.private_endpoints:
            if self.s3_prefix_list_id:
                raise ValueError("s3_prefix_list_id is used only with private_endpoints: true")
            return self
        if self.vpc_id is not None:
            raise ValueError(
                "private_endpoints: true builds the endpoints into the VPC this toolkit creates; "
                "an existing VPC brings its own"
            )
        if self.s3_prefix_list_id is None:
            raise ValueError(
                "private_endpoints: true needs s3_prefix_list_id, the id of the prefix list "
                "com.amazonaws.<region>.s3 (aws ec2 describe-managed-prefix-lists)"
            )
        return self

    @model_validator(mode="after")
    def _one_mode(self) -> NetworkConfig:
        if self.vpc_id is None:
            if self.private_subnet_ids or self.public_subnet_ids:
                raise ValueError("subnet ids need vpc_id; to create a VPC give cidr instead")
            size = ipaddress.ip_network(self.vpc_cidr).num_addresses
            needed = len(self.availability_zones) * SUBNET_ADDRESSES_PER_AZ
            if size < needed:
                raise ValueError(
                    f"cidr {self.vpc_cidr} holds {size:,} addresses; {len(self.availability_zones)}"
                    f" AZs need {needed:,} (a public /24, a private /20 and a database /24 each)"
                )
            return self
        if self.cidr is not None or self.nat_gateways is not None:
            raise ValueError("give either vpc_id (use a VPC) or cidr/nat_gateways (create one)")
        if len(self.private_subnet_ids) != len(self.availability_zones):
            raise ValueError("private_subnet_ids needs one subnet per availability zone")
        if self.public_subnet_ids and len(self.public_subnet_ids) != len(self.availability_zones):
            raise ValueError("public_subnet_ids needs one subnet per availability zone")
        return self

    @property
    def creates_vpc(self) -> bool:
        return self.vpc_id is None

    @property
    def vpc_cidr(self) -> str:
        return self.cidr or "10.0.0.0/16"

    @property
    def nat_gateway_count(self) -> int:
        return 1 if self.nat_gateways is None else self.nat_gateways


class DatabaseConfig(Model):
    instance_class: InstanceClass = Field(
        default="db.t4g.medium",
        description="The RDS PostgreSQL instance class of Airflow's metadata database.",
        examples=["db.t4g.medium"],
    )
    allocated_storage_gb: int = Field(
        default=20,
        ge=20,
        le=65536,
        description="The database's storage in GiB.",
        examples=[50],
    )
    multi_az: bool = Field(default=True, description="A standby in a second zone.", examples=[True])
    deletion_protection: bool = Field(
        default=True,
        description="RDS refuses to delete the database while true.",
        examples=[True],
    )


Username = Annotated[str, _matching(r"[A-Za-z0-9_.@-]{1,64}", "a user name ([A-Za-z0-9_.@-])")]
FabRole = Annotated[
    str, _matching(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}", "a role name ([A-Za-z0-9 _.-], 1-64)")
]
LdapUrl = Annotated[
    str, _matching(r"ldaps?://[A-Za-z0-9.-]+(:\d{1,5})?", "an ldap:// or ldaps:// host URL")
]
DistinguishedName = Annotated[
    str, _matching(r"[^\x00-\x1f]{1,1024}", "an LDAP DN or filter (no control characters)")
]
LdapAttribute = Annotated[str, _matching(r"[A-Za-z][A-Za-z0-9-]{0,63}", "an LDAP attribute")]
# Airflow's own FAB roles: a manifest's access names roles of its own.
FAB_BUILTIN_ROLES = frozenset({"Admin", "Op", "User", "Viewer", "Public"})


class SimpleAuth(Model):
    """Airflow's simple auth manager: users and roles here, passwords in Secrets Manager."""

    manager: Literal["simple"] = Field(
        default="simple",
        description="Airflow's simple auth manager: users and roles here, passwords in Secrets "
        "Manager.",
        examples=["simple"],
    )
    users: dict[Username, Literal["viewer", "user", "op", "admin"]] = Field(
        default_factory=lambda: {"admin": "admin"},
        min_length=1,
        max_length=100,
        description="Each user's role: viewer, user, op or admin.",
        examples=[{"admin": "admin", "analyst": "viewer"}],
    )
    passwords_secret: SecretName | None = Field(
        default=None,
        description='A secret holding {"<user>": "<password>", ...}; without it the toolkit '
        "generates a password for the one user.",
        examples=["platform/airflow-web-passwords"],
    )

    @model_validator(mode="after")
    def _passwords(self) -> SimpleAuth:
        if self.passwords_secret is None and len(self.users) != 1:
            raise ValueError(
                "more than one user needs passwords_secret: the name of a secret holding "
                '{"<user>": "<password>", ...}'
            )
        return self


class LdapConfig(Model):
    server: LdapUrl = Field(
        description="The directory's URL: ldaps://, or ldap:// with use_tls.",
        examples=["ldaps://ldap.example.com:636"],
    )
    bind_user: DistinguishedName = Field(
        description="The DN the api-server binds as to search for users.",
        examples=["cn=airflow,ou=services,dc=example,dc=com"],
    )
    bind_password_secret: SecretName = Field(
        description="A secret whose whole value is the bind password.",
        examples=["platform/ldap-bind-password"],
    )
    search: DistinguishedName = Field(
        description="The base DN users are searched under.",
        examples=["ou=people,dc=example,dc=com"],
    )
    search_filter: DistinguishedName | None = Field(
        default=None,
        description="An LDAP filter a user must also match.",
        examples=["(memberOf=cn=airflow-users,ou=groups,dc=example,dc=com)"],
    )
    uid_field: LdapAttribute = Field(
        default="uid",
        description="The attribute holding the login name (sAMAccountName for Active Directory).",
        examples=["uid"],
    )
    group_field: LdapAttribute = Field(
        default="memberOf",
        description="The attribute listing a user's groups.",
        examples=["memberOf"],
    )
    use_tls: bool = Field(
        default=False, description="STARTTLS on an ldap:// server.", examples=[True]
    )
    roles_mapping: dict[DistinguishedName, list[FabRole]] = Field(
        default_factory=dict,
        description="LDAP group DN -> the Airflow roles its members get (synced at each login).",
        examples=[{"cn=data-eng,ou=groups,dc=example,dc=com": ["User"]}],
    )
    registration_role: FabRole = Field(
        default="Public",
        description="The role of a user in no mapped group (Public: no access).",
        examples=["Public"],
    )

    @model_validator(mode="after")
    def _encrypted(self) -> LdapConfig:
        if self.server.startswith("ldap://") and not self.use_tls:
            raise ValueError(
                "ldap:// without use_tls: true would send the bind password and every user's "
                "password in the clear; use ldaps:// or use_tls: true"
            )
        return self


class FabAuth(Model):
    """The FAB auth manager with LDAP or Active Directory logins."""

    manager: Literal["fab"] = Field(
        description="The FAB auth manager, with LDAP or Active Directory logins.",
        examples=["fab"],
    )
    ldap: LdapConfig = Field(
        description="The directory users log in with.",
        examples=[
            {
                "server": "ldaps://ldap.example.com:636",
                "bind_user": "cn=airflow,ou=services,dc=example,dc=com",
                "bind_password_secret": "platform/ldap-bind-password",
                "search": "ou=people,dc=example,dc=com",
            }
        ],
    )


class WebConfig(Model):
    allowed_cidrs: list[Cidr] = Field(
        min_length=1,
        description="The IPv4 blocks that may reach the web UI and REST API (no open default).",
        examples=[["10.0.0.0/8"]],
    )
    certificate_arn: CertificateArn | None = Field(
        default=None,
        description="The ACM certificate the load balancer serves HTTPS with; without one, "
        "allow_http: true is required.",
        examples=[
            "arn:aws:acm:us-east-1:111122223333:certificate/5b3c1a52-8d0e-4f6b-9a43-7c2d5e8f1a90"
        ],
    )
    internal: bool = Field(
        default=True,
        description="An internal load balancer (false: internet-facing, still limited to "
        "allowed_cidrs).",
        examples=[True],
    )
    allow_http: bool = Field(
        default=False,
        description="Serve plain HTTP when there is no certificate_arn.",
        examples=[False],
    )
    auth: Annotated[SimpleAuth | FabAuth, Field(discriminator="manager")] = Field(
        default=SimpleAuth(),
        description="Who may log in: simple (users here) or fab (LDAP).",
        examples=[{"manager": "simple", "users": {"admin": "admin"}}],
    )

    @model_validator(mode="after")
    def _tls(self) -> WebConfig:
        if self.certificate_arn is None and not self.allow_http:
            raise ValueError(
                "give certificate_arn for HTTPS, or set allow_http: true to serve plain HTTP"
            )
        return self


class DagBundle(Model):
    """One DAG bundle: files under `<name>/` in the deployment's DAG bucket, or a git
    repository. Each has its own dag-processor and credentials; a manifest's `bundle` names
    the one its dag_id may come from."""

    name: BundleName = Field(
        default=DEFAULT_BUNDLE,
        description="The bundle's name: its S3 prefix, dag-processor and git connection; "
        "manifests name it in bundle.",
        examples=["team_a"],
    )
    bundle: Literal["git", "s3"] = Field(
        default="s3",
        description="s3: files under <name>/ in the deployment's DAG bucket. git: a repository.",
        examples=["s3"],
    )
    url: GitUrl | None = Field(
        default=None,
        description="With bundle: git, the repository's https URL, without credentials.",
        examples=["https://github.com/acme/airflow-dags.git"],
    )
    branch: str = Field(
        default="main",
        description="With bundle: git, the branch the cluster tracks.",
        examples=["main"],
    )
    credentials_secret: SecretName | None = Field(
        default=None,
        description="With bundle: git, a secret holding a read-only deploy key as an Airflow "
        "git connection.",
        examples=["platform/airflow-dags-deploy-key"],
    )

    @model_validator(mode="after")
    def _git_fields(self) -> DagBundle:
        if self.bundle == "git" and self.url is None:
            raise ValueError("bundle: git needs url")
        if self.bundle == "s3" and (self.url or self.credentials_secret):
            raise ValueError("url and credentials_secret apply only to bundle: git")
        return self


def _distinct(bundles: list[DagBundle]) -> list[DagBundle]:
    names = [b.name for b in bundles]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"bundle names must differ: {', '.join(map(repr, twice))} is used twice")
    return bundles


def _shape(value: object) -> str:
    return "<list>" if isinstance(value, list) else "<mapping>"


# `dags:` is one bundle (a mapping, as before several were possible) or a list of them. The tags
# never reach a message: validation drops them from locations.
DagsConfig = Annotated[
    Annotated[DagBundle, Tag("<mapping>")]
    | Annotated[
        list[DagBundle],
        Field(min_length=1, max_length=20),
        AfterValidator(_distinct),
        Tag("<list>"),
    ],
    Discriminator(_shape),
]


class WorkerSize(Model):
    model_config = ConfigDict(json_schema_extra=fargate_schema)

    cpu: int = Field(
        default=512,
        description="Fargate CPU units of a task: 256, 512, 1024, 2048, 4096, 8192 or 16384.",
        examples=[512],
    )
    memory: int = Field(
        default=1024,
        description="Fargate memory of a task in MiB; it must fit cpu (512: 1024 to 4096).",
        examples=[1024],
    )
    # Celery mode: the DAG's worker service scales between these on its queue's backlog
    min_count: int = Field(
        default=0,
        ge=0,
        le=100,
        description="Celery mode: the fewest workers of the DAG's service.",
        examples=[0],
    )
    max_count: int = Field(
        default=4,
        ge=1,
        le=100,
        description="Celery mode: the most workers of the DAG's service.",
        examples=[4],
    )
    concurrency: int = Field(
        default=2,
        ge=1,
        le=32,
        description="Celery mode: Airflow tasks each worker runs at once.",
        examples=[2],
    )

    @model_validator(mode="after")
    def _fits(self) -> WorkerSize:
        check_fargate_size(self.cpu, self.memory)
        check_counts(self.min_count, self.max_count)
        return self


class IamConfig(Model):
    allow_escalation_for: list[DagId] = Field(
        default_factory=list,
        description="dag_ids whose statements may escalate privileges (each needs a manifest).",
        examples=[["platform_maintenance"]],
    )
    max_managed_policies_per_role: int = Field(
        default=10,
        ge=1,
        le=20,
        description="Managed policies per role: IAM's default quota, up to 20 if raised.",
        examples=[10],
    )
    role_quota: int = Field(
        default=1000,
        ge=1,
        le=5000,
        description="The account's IAM role quota; synth fails (FA103) above it.",
        examples=[1000],
    )
    permissions_boundary_arn: BoundaryArn | None = Field(
        default=None,
        description="A managed policy set as the boundary of every role the stacks make; "
        "foundation bootstrap requires it.",
        examples=["arn:aws:iam::111122223333:policy/acme-airflow-boundary"],
    )
    role_path: RolePath = Field(
        default="/",
        description="The IAM path every role the toolkit makes lives under.",
        examples=["/platform/"],
    )
    role_name_prefix: RoleNamePrefix = Field(
        default="",
        description="What every role name starts with: up to 16 characters ending in one of "
        "+ = , . @ _",
        examples=["org_"],
    )


class Deployment(Model):
    """The whole of `config/foundation.yaml` after overlays."""

    name: ProjectName = Field(
        description="The deployment's name: the prefix of its stacks, roles and resources.",
        examples=["acme-airflow"],
    )
    region: Region = Field(description="The AWS region to deploy to.", examples=["us-east-1"])
    account: AccountId = Field(
        description="The 12-digit AWS account to deploy to (quote it).",
        examples=["111122223333"],
    )
    network: NetworkConfig = Field(
        description="The VPC: one to create (availability_zones, cidr) or one to use (vpc_id, "
        "subnet ids).",
        examples=[{"availability_zones": ["us-east-1a", "us-east-1b"], "cidr": "10.40.0.0/16"}],
    )
    web: WebConfig = Field(
        description="The load balancer in front of the web UI and REST API, and logins.",
        examples=[{"allowed_cidrs": ["10.0.0.0/8"], "allow_http": True}],
    )
    airflow: AirflowConfig = Field(
        default=AirflowConfig(),
        description="The image, executor and trigger classes.",
        examples=[{"executor": "ecs"}],
    )
    database: DatabaseConfig = Field(
        default=DatabaseConfig(),
        description="Airflow's metadata database (RDS PostgreSQL).",
        examples=[{"instance_class": "db.t4g.medium", "multi_az": True}],
    )
    dags: DagsConfig = Field(
        default=DagBundle(),
        description="Where DAG files come from: one bundle (a mapping) or a list of named "
        "bundles, one per team.",
        examples=[{"bundle": "s3"}, [{"name": "team_a", "bundle": "s3"}]],
    )
    worker_defaults: WorkerSize = Field(
        default=WorkerSize(),
        description="The worker size of a DAG whose manifest gives none.",
        examples=[{"cpu": 512, "memory": 1024}],
    )
    iam: IamConfig = Field(
        default=IamConfig(),
        description="Role paths, names, boundary and quotas.",
        examples=[{"role_path": "/"}],
    )
    worker_stacks: int = Field(
        default=32,
        ge=1,
        le=200,
        description="How many worker stacks DAGs are spread over; fixed once deployed.",
        examples=[32],
    )
    tags: dict[TagKey, TagValue] = Field(
        default_factory=dict,
        max_length=40,
        description="Tags on every resource (keys not starting aws: or foundation:).",
        examples=[{"team": "data-platform"}],
    )

    @model_validator(mode="after")
    def _public_alb_needs_public_subnets(self) -> Deployment:
        net = self.network
        if not self.web.internal and not net.creates_vpc and not net.public_subnet_ids:
            raise ValueError("web.internal: false needs network.public_subnet_ids for the ALB")
        return self

    @property
    def bundles(self) -> list[DagBundle]:
        return self.dags if isinstance(self.dags, list) else [self.dags]

    def bundle_path(self, index: int) -> tuple[str | int, ...]:
        """Where the index-th bundle is written: `dags` itself, or `dags[i]`."""
        return ("dags", index) if isinstance(self.dags, list) else ("dags",)

    def bundle_named(self, name: str) -> DagBundle | None:
        return next((b for b in self.bundles if b.name == name), None)

    def bundle_of(self, named: str | None) -> str:
        """The bundle a DAG may come from: its manifest's, or the deployment's only one."""
        return named or self.bundles[0].name

    def dag_processor(self, bundle: DagBundle) -> str:
        """The component that parses this bundle, and only it."""
        return dag_processor(bundle.name, len(self.bundles))

    def bundle_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Why a DAG bundle cannot work with this deployment, where it is written."""
        problems = []
        for i, bundle in enumerate(self.bundles):
            at = self.bundle_path(i)
            if self.network.private_endpoints and bundle.bundle == "git":
                message = (
                    "network.private_endpoints: true leaves tasks no way to a git host (Airflow 3 "
                    "workers fetch their bundle); use bundle: s3"
                )
                problems.append(((*at, "bundle"), message))
            role = self.namespace.role(self.dag_processor(bundle))
            if len(role) > ROLE_NAME_MAX:
                message = (
                    f"its dag-processor's role {role!r} would be {len(role)} characters, over "
                    f"IAM's {ROLE_NAME_MAX}: shorten the bundle's name"
                )
                problems.append(((*at, "name"), message))
        if len(self.bundles) > 1 and self.airflow.unmanaged_dags == "baseline":
            message = (
                "baseline runs every DAG without a manifest under one identity, which would read "
                "every bundle; with several bundles give each DAG a manifest (refuse)"
            )
            problems.append((("airflow", "unmanaged_dags"), message))
        return problems

    @property
    def image_problem(self) -> str | None:
        """Why airflow.image cannot work with this network or executor, if it cannot."""
        registry = f".dkr.ecr.{self.region}.amazonaws.com/"
        if self.network.private_endpoints and registry not in self.airflow.image:
            return (
                "network.private_endpoints: true leaves tasks no way to a public registry; "
                f"use an image in ECR in {self.region} (<account>{registry}<repo>:<tag>)"
            )
        if self.airflow.executor == "celery" and is_stock_image(self.airflow.image):
            return CELERY_IMAGE_NEEDS
        return None

    @property
    def namespace(self) -> Namespace:
        return Namespace(
            self.name, self.iam.role_path, self.iam.role_name_prefix, self.account, self.region
        )

    def dag_names(self, dag_id: str) -> DagNames:
        return self.namespace.dag(dag_id)

    @property
    def partition(self) -> str:
        return partition_of(self.region)

    @property
    def logs_bucket(self) -> str:
        return self.namespace.logs_bucket

    @property
    def dags_bucket(self) -> str | None:
        """The bucket of every S3 bundle (each under its own naming.bundle_prefix), if any."""
        s3 = any(b.bundle == "s3" for b in self.bundles)
        return self.namespace.dags_bucket if s3 else None

    @property
    def artifacts_bucket(self) -> str:
        return self.namespace.artifacts_bucket

    @property
    def celery(self) -> bool:
        return self.airflow.executor == "celery"

    @property
    def web_secrets(self) -> dict[str, str]:
        """The web login's secrets the config names, by their use: simple auth's passwords, or
        the LDAP bind password."""
        auth = self.web.auth
        if isinstance(auth, FabAuth):
            return {"ldap_bind": auth.ldap.bind_password_secret}
        return {"web_passwords": auth.passwords_secret} if auth.passwords_secret else {}

    def reserved_secret(self, name: str) -> bool:
        """Secrets only the toolkit grants: any deployment's in the account (<name>/cluster/,
        <name>/dags/), this one's (<name>/: every DAG's, the cluster's database, Fernet, JWT and
        API keys, web passwords), every DAG bundle's git key and the web login's secrets."""
        return (
            any_deployments("secretsmanager", f"secret:{name}")
            or self.namespace.owns("secretsmanager", f"secret:{name}")
            or name in {b.credentials_secret for b in self.bundles}
            or name in self.web_secrets.values()
        )

    def reserved_resource(self, service: str, resource: str) -> bool:
        """Whether an ARN's resource part (or a pattern of one) names something of the
        cluster's own, which no DAG may reach: its namespace, the secrets its config names, and
        anything of the shape any deployment's names take (another's in the account)."""
        if service == "secretsmanager":
            return self.reserved_secret(resource.removeprefix("secret:"))
        return any_deployments(service, resource) or self.namespace.owns(service, resource)
