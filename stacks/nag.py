"""cdk-nag's AwsSolutions pack on every stack, and every acknowledgement of one of its findings,
each with its reason. cdk-nag 3 is a validation plugin that acknowledges per finding, so an IAM5
finding (a `*` in a resource) is acknowledged by the code that writes that statement, naming the
grant it came from."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

from foundation.iam.policy import Statement

# cdk-nag reports instead of failing the synth; foundation/checks turns its report into findings.
CONTEXT = {"@aws-cdk/core:failSynthOnValidationErrors": False}
REPORT_FILE = "validation-report.json"


def enable(app: cdk.App) -> None:
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))


@dataclass(frozen=True)
class Acknowledgement:
    rule: str
    reason: str


# Findings acknowledged on the cluster's own resources (the README's security section lists them).
CLUSTER = {
    "secrets": Acknowledgement(
        "AwsSolutions-SMG4",
        "generated key material (Fernet, JWT, API key) and the database password: rotating them "
        "needs every component restarted together, which a rotation Lambda cannot do safely",
    ),
    "environment": Acknowledgement(
        "AwsSolutions-ECS2",
        "container environment variables hold Airflow settings only; every secret is injected "
        "from Secrets Manager as an ECS secret (a synth check scans templates for plaintext)",
    ),
    "database_port": Acknowledgement(
        "AwsSolutions-RDS11",
        "a non-default port hides nothing: the database security group admits only the "
        "cluster's components",
    ),
    "access_logs": Acknowledgement(
        "AwsSolutions-S1",
        "the bucket is reached only by the cluster's own roles; use CloudTrail data events for "
        "object-level audit instead of another bucket of server access logs",
    ),
    "celery_queue": Acknowledgement(
        "AwsSolutions-SQS3",
        "a DAG's Celery queue needs no dead-letter queue: a message no worker can run leaves its "
        "task instance queued, and Airflow's scheduler fails or re-queues it "
        "([scheduler] task_queued_timeout)",
    ),
    "load_balancer_logs": Acknowledgement(
        "AwsSolutions-ELB2",
        "an internal load balancer in front of the Airflow UI and API, whose own audit log "
        "records every request; ALB access logs need a bucket policy per region's ELB account",
    ),
}


def worker_deliveries(resource: str) -> Acknowledgement:
    """IAM5 for what the worker stacks deliver (Namespace.worker_deliveries), which core names
    as one prefix: it knows no worker stack."""
    return Acknowledgement(
        f"AwsSolutions-IAM5[Resource::{resource}]",
        "a prefix: the Celery settings each worker stack delivers to its worker services, read by "
        "the workers' execution role (ECS) alone; core names no worker stack",
    )


def config_choice(rule: str, field: str) -> Acknowledgement:
    """A finding that follows from a setting the deployment's owner turned off on purpose."""
    return Acknowledgement(rule, f"config {field} is false: the deployment's owner chose it")


def acknowledge(scope: IConstruct, *acks: Acknowledgement) -> None:
    """Each finding `acks` names on `scope` and every construct under it, in one call (two
    calls into Node.js for each acknowledgement were a third of a worker stack's build)."""
    if acks:
        cdk.Validations.of(scope).acknowledge(
            *(cdk.Acknowledgment(id=ack.rule, reason=ack.reason) for ack in acks)
        )


def for_statements(statements: list[Statement]) -> list[Acknowledgement]:
    """IAM5 for each resource with a `*`: a prefix the statement's grant names, or `*` itself for
    actions with no resource-level permissions."""
    acknowledgements = []
    for statement in statements:
        why = "; ".join(statement.sources) or "the toolkit's baseline"
        for resource in statement.resources:
            if "*" not in resource:
                continue
            reason = (
                f"actions without resource-level permissions ({', '.join(statement.actions)}), "
                f"granted by {why}"
                if resource == "*"
                else f"a prefix, granted by {why}"
            )
            rule = f"AwsSolutions-IAM5[Resource::{resource}]"
            acknowledgements.append(Acknowledgement(rule, reason))
    return acknowledgements
