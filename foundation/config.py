"""The deployment: `config/foundation.yaml`, optionally overlaid by `config/<env>.yaml`."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, Discriminator, Field, Tag, model_validator

from foundation.fields import (
    AccountId,
    Cidr,
    DagId,
    Model,
    Region,
    SecretName,
    _matching,
    check_counts,
    check_fargate_size,
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
from foundation.regions import partitions
from foundation.triggers import allowed, static_refusal

DEFAULT_IMAGE = "apache/airflow:3.3.2"

# Longest values an ARN can take, for sizing policies at their worst case.
WORST_CASE_PARTITION = "aws-us-gov"
WORST_CASE_REGION = "ap-southeast-14"
WORST_CASE_ACCOUNT = "123456789012"

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
    AfterValidator(_deferrable_trigger),
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
    "redshift-serverless",
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
    "apache/airflow image has no pycurl: build docker/Dockerfile (FROM apache/airflow, adds "
    "them) and set airflow.image to the result"
)


def is_stock_image(image: str) -> bool:
    return image.split(":", 1)[0].split("@", 1)[0] in STOCK_IMAGES


def partition_of(region: str) -> str:
    """The partition of a region the config accepted (fields.Region: botocore's regions)."""
    return partitions()[region]


class AirflowConfig(Model):
    image: Image = DEFAULT_IMAGE
    executor: Literal["ecs", "celery"] = "ecs"
    # DAGs with no manifest: refused by the executor, or run under an identity with no grants
    unmanaged_dags: Literal["refuse", "baseline"] = "refuse"
    # Trigger classes a task may defer to besides foundation.triggers.DEFAULT_TRIGGERS: exact
    # classpaths, each checked at validate to import to a trigger that loads no AWS SDK.
    triggers: list[TriggerClasspath] = Field(default_factory=list, max_length=50)

    @property
    def deferrable_triggers(self) -> list[str]:
        return allowed(self.triggers)


SUBNET_ADDRESSES_PER_AZ = 256 + 4096 + 256


class NetworkConfig(Model):
    """Either a VPC to create (cidr) or an existing one (vpc_id and subnet ids)."""

    availability_zones: list[AvailabilityZone] = Field(min_length=2, max_length=6)
    cidr: Cidr | None = None
    # at least one: without VPC endpoints, private subnets reach AWS APIs only through NAT
    nat_gateways: int | None = Field(default=None, ge=1, le=6)
    vpc_id: VpcId | None = None
    private_subnet_ids: list[SubnetId] = Field(default_factory=list)
    public_subnet_ids: list[SubnetId] = Field(default_factory=list)
    # VPC endpoints for the AWS APIs the cluster uses; DAG tasks may then reach only those
    # (and S3 through its gateway: com.amazonaws.<region>.s3's prefix list, given by id because
    # synthesis makes no AWS lookup) plus what their manifest's network.egress adds.
    private_endpoints: bool = False
    s3_prefix_list_id: PrefixListId | None = None

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
    instance_class: InstanceClass = "db.t4g.medium"
    allocated_storage_gb: int = Field(default=20, ge=20, le=65536)
    multi_az: bool = True
    deletion_protection: bool = True


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

    manager: Literal["simple"] = "simple"
    users: dict[Username, Literal["viewer", "user", "op", "admin"]] = Field(
        default_factory=lambda: {"admin": "admin"}, min_length=1, max_length=100
    )
    # A secret holding {"<user>": "<password>", ...}; without it the toolkit generates one
    # password, for the one user.
    passwords_secret: SecretName | None = None

    @model_validator(mode="after")
    def _passwords(self) -> SimpleAuth:
        if self.passwords_secret is None and len(self.users) != 1:
            raise ValueError(
                "more than one user needs passwords_secret: the name of a secret holding "
                '{"<user>": "<password>", ...}'
            )
        return self


class LdapConfig(Model):
    server: LdapUrl
    bind_user: DistinguishedName
    bind_password_secret: SecretName  # the bind password, as the secret's whole value
    search: DistinguishedName  # the base DN users are searched under
    search_filter: DistinguishedName | None = None
    uid_field: LdapAttribute = "uid"  # sAMAccountName for Active Directory
    group_field: LdapAttribute = "memberOf"
    use_tls: bool = False  # STARTTLS on ldap://
    # LDAP group DN -> the Airflow roles its members get (synced at each login)
    roles_mapping: dict[DistinguishedName, list[FabRole]] = Field(default_factory=dict)
    registration_role: FabRole = "Public"  # users in no mapped group: no access

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

    manager: Literal["fab"]
    ldap: LdapConfig


class WebConfig(Model):
    allowed_cidrs: list[Cidr] = Field(min_length=1)
    certificate_arn: CertificateArn | None = None
    internal: bool = True
    allow_http: bool = False
    auth: Annotated[SimpleAuth | FabAuth, Field(discriminator="manager")] = SimpleAuth()

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

    name: BundleName = DEFAULT_BUNDLE
    bundle: Literal["git", "s3"] = "s3"
    url: GitUrl | None = None
    branch: str = "main"
    credentials_secret: SecretName | None = None

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
    cpu: int = 512
    memory: int = 1024
    # Celery mode: the DAG's worker service scales between these on its queue's backlog, and
    # each worker runs `concurrency` Airflow tasks at once
    min_count: int = Field(default=0, ge=0, le=100)
    max_count: int = Field(default=4, ge=1, le=100)
    concurrency: int = Field(default=2, ge=1, le=32)

    @model_validator(mode="after")
    def _fits(self) -> WorkerSize:
        check_fargate_size(self.cpu, self.memory)
        check_counts(self.min_count, self.max_count)
        return self


class IamConfig(Model):
    allow_escalation_for: list[DagId] = Field(default_factory=list)
    max_managed_policies_per_role: int = Field(default=10, ge=1, le=20)
    role_quota: int = Field(default=1000, ge=1, le=5000)
    # Set on every role the stacks make; the bootstrap's CloudFormation service role may create
    # roles only with it.
    permissions_boundary_arn: BoundaryArn | None = None
    # Where every role the toolkit makes lives, and what every role name starts with.
    role_path: RolePath = "/"
    role_name_prefix: RoleNamePrefix = ""


@dataclass(frozen=True)
class OpenEgress:
    """Egress the security group every DAG's tasks share allows, by CIDR."""

    cidr: str
    port: int
    protocol: str = "tcp"


# Without VPC endpoints, tasks and components reach AWS APIs (and the image registry) through
# NAT: HTTPS to anywhere.
PUBLIC_HTTPS = OpenEgress("0.0.0.0/0", 443)


class Deployment(Model):
    """The whole of `config/foundation.yaml` after overlays."""

    name: ProjectName
    region: Region
    account: AccountId
    network: NetworkConfig
    web: WebConfig
    airflow: AirflowConfig = AirflowConfig()
    database: DatabaseConfig = DatabaseConfig()
    dags: DagsConfig = DagBundle()
    worker_defaults: WorkerSize = WorkerSize()
    iam: IamConfig = IamConfig()
    worker_stacks: int = Field(default=32, ge=1, le=200)
    tags: dict[TagKey, TagValue] = Field(default_factory=dict, max_length=40)

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
    def every_task_egress(self) -> list[OpenEgress]:
        """What the workers security group lets every DAG's tasks reach, by CIDR (with
        private_endpoints: the VPC's endpoints and S3's prefix list, which are not CIDRs)."""
        return [] if self.network.private_endpoints else [PUBLIC_HTTPS]

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
