"""One DAG's permission manifest: `dag_permissions/<dag_id>.yaml`."""

from __future__ import annotations

from typing import Any, Literal

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


def _bucket() -> Any:
    return Field(description="One S3 bucket's name, no wildcards.", examples=["acme-raw"])


def _read_write() -> Any:
    return Field(description="read, write or read_write.", examples=["read"])


class S3Access(Model):
    bucket: BucketName = _bucket()
    prefix: S3Prefix = Field(
        description="A key prefix ending in '/': objects under it are granted, and listing "
        "only under it.",
        examples=["salesforce/"],
    )
    access: Literal["read", "write", "read_write"] = _read_write()


class KmsAccess(Model):
    key_arn: KmsKeyArn = Field(
        description="A KMS key's ARN (key/<id> or key/mrk-<id>, not an alias).",
        examples=["arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"],
    )
    access: Literal["decrypt", "encrypt", "encrypt_decrypt"] = Field(
        description="decrypt, encrypt or encrypt_decrypt.", examples=["decrypt"]
    )


class DynamoAccess(Model):
    table: DynamoTable = Field(
        description="A DynamoDB table's name (its indexes come with it).",
        examples=["sales_watermarks"],
    )
    access: Literal["read", "write", "read_write"] = _read_write()


class SqsAccess(Model):
    queue: QueueName = Field(description="An SQS queue's name.", examples=["sales-events"])
    access: Literal["send", "consume"] = Field(
        description="send, or consume (receive and delete).", examples=["send"]
    )


class SnsAccess(Model):
    topic: TopicName = Field(
        description="An SNS topic's name, to publish to.", examples=["sales-alerts"]
    )


class LambdaAccess(Model):
    function: FunctionName = Field(
        description="A Lambda function's name, to invoke (and its versions and aliases).",
        examples=["enrich-accounts"],
    )


class GlueAccess(Model):
    jobs: list[GlueName] = Field(
        default_factory=list,
        description="Glue jobs to start, watch and stop.",
        examples=[["sales-transform"]],
    )
    crawlers: list[GlueName] = Field(
        default_factory=list,
        description="Glue crawlers to start and watch.",
        examples=[["sales-crawler"]],
    )


class S3Location(Model):
    bucket: BucketName = _bucket()
    prefix: S3Prefix = Field(description="A key prefix ending in '/'.", examples=["results/sales/"])


class AthenaAccess(Model):
    workgroups: list[AthenaWorkgroup] = Field(
        min_length=1,
        description="Athena workgroups to run queries in.",
        examples=[["analytics"]],
    )
    results: S3Location = Field(
        description="Where Athena writes query results (with the DAG's own credentials).",
        examples=[{"bucket": "acme-athena", "prefix": "sales/"}],
    )
    databases: list[GlueDatabase] = Field(
        default_factory=list,
        description="Glue catalog databases whose tables may be read (the S3 data under them "
        "needs its own s3 entries).",
        examples=[["sales"]],
    )


class EmrAccess(Model):
    clusters: list[EmrClusterId] = Field(
        min_length=1,
        description="EMR cluster ids to add steps to and watch.",
        examples=[["j-2AXXXXXXGAPLF"]],
    )


class RedshiftDataAccess(Model):
    cluster: RedshiftIdentifier = Field(
        description="A provisioned Redshift cluster's identifier.", examples=["analytics"]
    )
    database: RedshiftName = Field(description="The database to query.", examples=["sales"])
    db_user: RedshiftName = Field(
        description="The database user to get temporary credentials for.", examples=["etl"]
    )


class DataPipelineAccess(Model):
    pipelines: list[PipelineId] = Field(
        min_length=1,
        description="Data Pipeline ids to activate and watch.",
        examples=[["df-0123456789ABC"]],
    )


class PassRole(Model):
    role: RoleName = Field(
        description="The name (with its path) of a role the DAG may pass.",
        examples=["emr-serverless-job"],
    )
    service: ServicePrincipal = Field(
        description="The only service it may be passed to (iam:PassedToService).",
        examples=["emr-serverless.amazonaws.com"],
    )


class RawStatement(Model):
    """The escape hatch: checked against the IAM database like everything else."""

    actions: list[str] = Field(
        min_length=1,
        description="Exact IAM actions (no wildcards), each in the IAM action database.",
        examples=[["ssm:GetParameter"]],
    )
    resources: list[str] = Field(
        min_length=1,
        description="ARNs in the deployment's partition; a wildcard only after the resource's "
        "name.",
        examples=[["arn:aws:ssm:us-east-1:111122223333:parameter/sales/*"]],
    )


class Permissions(Model):
    s3: list[S3Access] = Field(
        default_factory=list,
        description="Objects under a bucket's prefix.",
        examples=[[{"bucket": "acme-raw", "prefix": "salesforce/", "access": "read"}]],
    )
    secrets: list[SecretName] = Field(
        default_factory=list,
        description="Exact Secrets Manager names besides the DAG's own prefix (granted "
        "implicitly).",
        examples=[["shared/snowflake-readonly"]],
    )
    kms: list[KmsAccess] = Field(
        default_factory=list,
        description="KMS keys to decrypt or encrypt with.",
        examples=[
            [
                {
                    "key_arn": "arn:aws:kms:us-east-1:111122223333:key/"
                    "1234abcd-12ab-34cd-56ef-1234567890ab",
                    "access": "decrypt",
                }
            ]
        ],
    )
    dynamodb: list[DynamoAccess] = Field(
        default_factory=list,
        description="DynamoDB tables.",
        examples=[[{"table": "sales_watermarks", "access": "read_write"}]],
    )
    sqs: list[SqsAccess] = Field(
        default_factory=list,
        description="SQS queues to send to or consume from.",
        examples=[[{"queue": "sales-events", "access": "send"}]],
    )
    sns: list[SnsAccess] = Field(
        default_factory=list,
        description="SNS topics to publish to.",
        examples=[[{"topic": "sales-alerts"}]],
    )
    lambda_: list[LambdaAccess] = Field(
        default_factory=list,
        alias="lambda",
        description="Lambda functions to invoke.",
        examples=[[{"function": "enrich-accounts"}]],
    )
    glue: GlueAccess = Field(
        default=GlueAccess(),
        description="Glue jobs and crawlers.",
        examples=[{"jobs": ["sales-transform"]}],
    )
    athena: AthenaAccess | None = Field(
        default=None,
        description="Athena queries: workgroups, the results location, catalog databases.",
        examples=[
            {"workgroups": ["analytics"], "results": {"bucket": "acme-athena", "prefix": "sales/"}}
        ],
    )
    emr: EmrAccess | None = Field(
        default=None,
        description="Steps on EMR clusters.",
        examples=[{"clusters": ["j-2AXXXXXXGAPLF"]}],
    )
    redshift_data: list[RedshiftDataAccess] = Field(
        default_factory=list,
        description="SQL through the Redshift Data API on a provisioned cluster.",
        examples=[[{"cluster": "analytics", "database": "sales", "db_user": "etl"}]],
    )
    datapipeline: DataPipelineAccess | None = Field(
        default=None,
        description="Data Pipeline pipelines.",
        examples=[{"pipelines": ["df-0123456789ABC"]}],
    )
    pass_roles: list[PassRole] = Field(
        default_factory=list,
        description="Roles the DAG may pass, each to one service: the only way to pass a role.",
        examples=[[{"role": "emr-serverless-job", "service": "emr-serverless.amazonaws.com"}]],
    )
    statements: list[RawStatement] = Field(
        default_factory=list,
        description="The escape hatch: IAM statements, checked like every other grant.",
        examples=[
            [
                {
                    "actions": ["ssm:GetParameter"],
                    "resources": ["arn:aws:ssm:us-east-1:111122223333:parameter/sales/*"],
                }
            ]
        ],
    )

    def services(self) -> list[str]:
        """Names of the permission kinds this manifest uses, in declaration order."""
        used = []
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if value and value != field.get_default(call_default_factory=True):
                used.append(field.alias or name)
        return used


class Egress(Model):
    cidr: Cidr = Field(
        description="The IPv4 network the DAG's tasks may reach (no host bits set).",
        examples=["203.0.113.0/24"],
    )
    port: Port = Field(description="The destination port, 1-65535.", examples=[5432])
    protocol: Literal["tcp", "udp"] = Field(
        default="tcp", description="tcp or udp.", examples=["tcp"]
    )
    description: str = Field(
        default="",
        max_length=255,
        description="What the rule is for, shown on the security group.",
        examples=["Snowflake"],
    )


class NetworkAccess(Model):
    egress: list[Egress] = Field(
        default_factory=list,
        description="Outbound rules added to the DAG's own security group.",
        examples=[[{"cidr": "203.0.113.0/24", "port": 5432, "description": "warehouse"}]],
    )


class DagAccess(Model):
    """Airflow (FAB) roles that may see, trigger or edit this DAG in the UI and REST API."""

    view: list[FabRole] = Field(
        default_factory=list,
        max_length=50,
        description="Roles that may see the DAG and its runs.",
        examples=[["sales-analysts"]],
    )
    trigger: list[FabRole] = Field(
        default_factory=list,
        max_length=50,
        description="Roles that may also trigger runs.",
        examples=[["sales-oncall"]],
    )
    edit: list[FabRole] = Field(
        default_factory=list,
        max_length=50,
        description="Roles that may also edit (pause, clear, delete).",
        examples=[["sales-admins"]],
    )

    def roles(self) -> list[str]:
        return sorted({*self.view, *self.trigger, *self.edit})


class DagManifest(Model):
    dag_id: DagId = Field(
        description="The DAG's id, equal to the file's name without .yaml.",
        examples=["sales_daily"],
    )
    owner: str = Field(
        min_length=1,
        max_length=256,
        description="The person or team answerable for the DAG.",
        examples=["data-eng@example.com"],
    )
    description: str = Field(
        default="",
        max_length=1024,
        description="What the DAG does.",
        examples=["Daily Salesforce extract into the lake"],
    )
    bundle: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]{1,200}$",
        description="The DAG bundle allowed to define this dag_id; required when the config has "
        "several.",
        examples=["dags"],
    )
    worker: WorkerSize | None = Field(
        default=None,
        description="The DAG's task size; else the config's worker_defaults.",
        examples=[{"cpu": 1024, "memory": 2048}],
    )
    permissions: Permissions = Field(
        default=Permissions(),
        description="The AWS resources the DAG's tasks may reach, and nothing else.",
        examples=[{"secrets": ["shared/snowflake-readonly"]}],
    )
    network: NetworkAccess = Field(
        default=NetworkAccess(),
        description="Network egress beyond HTTPS.",
        examples=[{"egress": [{"cidr": "203.0.113.0/24", "port": 5432}]}],
    )
    access: DagAccess | None = Field(
        default=None,
        description="Airflow roles that may see, trigger or edit this DAG (web.auth manager fab "
        "only).",
        examples=[{"view": ["sales-analysts"]}],
    )

    @model_validator(mode="after")
    def _owner_given(self) -> DagManifest:
        if not self.owner.strip():
            raise ValueError("owner must name a person or team")
        return self
