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
    cluster: RedshiftIdentifier
    database: RedshiftName
    db_user: RedshiftName


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
