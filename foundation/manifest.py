"""One DAG's permission manifest: `dag_permissions/<dag_id>.yaml`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from foundation.config import FabRole, WorkerSize
from foundation.fields import (
    AthenaWorkgroup,
    BucketName,
    Cidr,
    DagId,
    DynamoTable,
    EmrClusterId,
    FunctionName,
    GlueDatabase,
    GlueName,
    KmsKeyArn,
    Model,
    PipelineId,
    Port,
    QueueName,
    RedshiftIdentifier,
    RedshiftName,
    RedshiftWorkgroup,
    RedshiftWorkgroupId,
    RoleName,
    S3Prefix,
    SecretName,
    ServicePrincipal,
    TopicName,
)


class S3Access(Model):
    bucket: BucketName
    prefix: S3Prefix | None = Field(
        default=None,
        description=(
            "The key prefix the DAG may reach (ending in '/'); leave it out for the whole bucket "
            "(a bucket the DAG owns): its objects bucket/* and every listing"
        ),
        examples=["sales/", None],
    )
    access: Literal["read", "write", "read_write"]


class KmsAccess(Model):
    key_arn: KmsKeyArn
    access: Literal["decrypt", "encrypt", "encrypt_decrypt"]


class DynamoAccess(Model):
    table: DynamoTable
    access: Literal["read", "write", "read_write"]


class SqsAccess(Model):
    queue: QueueName
    access: Literal["send", "consume"]


class SnsAccess(Model):
    topic: TopicName


class LambdaAccess(Model):
    function: FunctionName


class GlueAccess(Model):
    jobs: list[GlueName] = Field(default_factory=list)
    crawlers: list[GlueName] = Field(default_factory=list)


class S3Location(Model):
    bucket: BucketName
    prefix: S3Prefix


class AthenaAccess(Model):
    workgroups: list[AthenaWorkgroup] = Field(min_length=1)
    results: S3Location
    databases: list[GlueDatabase] = Field(default_factory=list)


class EmrAccess(Model):
    clusters: list[EmrClusterId] = Field(min_length=1)


class RedshiftDataAccess(Model):
    """One target of the Redshift Data API: a provisioned `cluster` or a Redshift Serverless
    `workgroup`, with how the Data API logs in to its `database`."""

    cluster: RedshiftIdentifier | None = Field(
        default=None,
        description="A provisioned cluster's identifier (give it or workgroup)",
        examples=["analytics"],
    )
    workgroup: RedshiftWorkgroup | None = Field(
        default=None,
        description=(
            "A Redshift Serverless workgroup's name, as the DAG's code passes it "
            "(workgroup_name); give it or cluster"
        ),
        examples=["analytics"],
    )
    workgroup_id: RedshiftWorkgroupId | None = Field(
        default=None,
        description=(
            "The workgroup's id, required with workgroup: IAM names a workgroup by its id "
            "(aws redshift-serverless get-workgroup --workgroup-name NAME "
            "--query workgroup.workgroupId)"
        ),
        examples=["8d2a1c3e-4b5f-4a6b-9c7d-0e1f2a3b4c5d"],
    )
    database: RedshiftName
    db_user: RedshiftName | None = Field(
        default=None,
        description=(
            "With cluster: the database user whose temporary credentials the Data API gets "
            "(redshift:GetClusterCredentials); give it or secret"
        ),
        examples=["etl_finance"],
    )
    secret: SecretName | None = Field(
        default=None,
        description=(
            "A Secrets Manager secret (its name) holding the database user and password, which "
            "the Data API reads with the task's identity; for a cluster instead of db_user, for a "
            "workgroup instead of the task's own IAM identity. Not one of the deployment's"
        ),
        examples=["redshift/finance-etl"],
    )

    @model_validator(mode="after")
    def _one_way_in(self) -> RedshiftDataAccess:
        if (self.cluster is None) == (self.workgroup is None):
            raise ValueError("name either cluster (provisioned) or workgroup (Redshift Serverless)")
        if self.cluster is not None:
            if self.workgroup_id is not None:
                raise ValueError("workgroup_id goes with workgroup, not cluster")
            if (self.db_user is None) == (self.secret is None):
                raise ValueError(
                    "a cluster needs either db_user (temporary credentials) or secret "
                    "(Secrets Manager), not both"
                )
            return self
        if self.workgroup_id is None:
            raise ValueError(
                "workgroup needs workgroup_id: IAM names a workgroup by its id "
                f"(aws redshift-serverless get-workgroup --workgroup-name {self.workgroup} "
                "--query workgroup.workgroupId)"
            )
        if self.db_user is not None:
            raise ValueError(
                "db_user is for a cluster: on a workgroup the database user is the task's role "
                "(IAMR:<role>), or the secret's"
            )
        return self


class DataPipelineAccess(Model):
    pipelines: list[PipelineId] = Field(min_length=1)


class PassRole(Model):
    role: RoleName
    service: ServicePrincipal


class RawStatement(Model):
    """The escape hatch: checked against the IAM database like everything else."""

    actions: list[str] = Field(min_length=1)
    resources: list[str] = Field(min_length=1)


class Permissions(Model):
    s3: list[S3Access] = Field(default_factory=list)
    secrets: list[SecretName] = Field(default_factory=list)
    kms: list[KmsAccess] = Field(default_factory=list)
    dynamodb: list[DynamoAccess] = Field(default_factory=list)
    sqs: list[SqsAccess] = Field(default_factory=list)
    sns: list[SnsAccess] = Field(default_factory=list)
    lambda_: list[LambdaAccess] = Field(default_factory=list, alias="lambda")
    glue: GlueAccess = GlueAccess()
    athena: AthenaAccess | None = None
    emr: EmrAccess | None = None
    redshift_data: list[RedshiftDataAccess] = Field(default_factory=list)
    datapipeline: DataPipelineAccess | None = None
    pass_roles: list[PassRole] = Field(default_factory=list)
    statements: list[RawStatement] = Field(default_factory=list)

    def services(self) -> list[str]:
        """Names of the permission kinds this manifest uses, in declaration order."""
        used = []
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if value and value != field.get_default(call_default_factory=True):
                used.append(field.alias or name)
        return used


class Egress(Model):
    cidr: Cidr
    port: Port
    protocol: Literal["tcp", "udp"] = "tcp"
    description: str = Field(default="", max_length=255)


class NetworkAccess(Model):
    egress: list[Egress] = Field(default_factory=list)


class DagAccess(Model):
    """Airflow (FAB) roles that may see, trigger or edit this DAG in the UI and REST API."""

    view: list[FabRole] = Field(default_factory=list, max_length=50)
    trigger: list[FabRole] = Field(default_factory=list, max_length=50)
    edit: list[FabRole] = Field(default_factory=list, max_length=50)

    def roles(self) -> list[str]:
        return sorted({*self.view, *self.trigger, *self.edit})


class DagManifest(Model):
    dag_id: DagId
    owner: str = Field(min_length=1, max_length=256)
    description: str = Field(default="", max_length=1024)
    bundle: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,200}$")
    worker: WorkerSize | None = None
    permissions: Permissions = Permissions()
    network: NetworkAccess = NetworkAccess()
    access: DagAccess | None = None  # web.auth manager fab only

    @model_validator(mode="after")
    def _owner_given(self) -> DagManifest:
        if not self.owner.strip():
            raise ValueError("owner must name a person or team")
        return self
