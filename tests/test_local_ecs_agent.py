"""The ECS agent's task-protection endpoint stand-in (foundation/local/ecs_agent.py): each task's
ECS_AGENT_URI answers as the agent does, calling ECS with that task's role, whose grant decides
(a DAG worker's: its own service's tasks, by their `foundation:queue` tag)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC
from pathlib import Path
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError

from foundation.local.ecs import Endpoint
from foundation.local.ecs_agent import LocalEcsAgent
from tests.moto_server import ACCOUNT, REGION, Credentials, MotoAws

CLUSTER = "agent"


def request(uri: str, method: str, body: bytes | None = None) -> tuple[int, dict]:
    sent = urllib.request.Request(f"{uri}/task-protection/v1/state", data=body, method=method)
    try:
        with urllib.request.urlopen(sent, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def session(creds: Credentials) -> dict[str, str]:
    return {
        "aws_access_key_id": creds.access_key_id,
        "aws_secret_access_key": creds.secret_access_key,
    }


@pytest.fixture
def agent(moto_aws: MotoAws, tmp_path: Path):
    admin = moto_aws.admin
    endpoint = Endpoint(
        moto_aws.endpoint, REGION, ACCOUNT, admin.access_key_id, admin.secret_access_key
    )
    ecs = moto_aws.client("ecs")
    ecs.create_cluster(clusterName=CLUSTER)
    ecs.register_task_definition(
        family="agent-worker", containerDefinitions=[{"name": "c", "image": "i", "memory": 512}]
    )
    agent = LocalEcsAgent(endpoint).start()
    yield agent
    agent.stop()


def task_of(moto_aws: MotoAws, queue: str) -> SimpleNamespace:
    run = moto_aws.client("ecs").run_task(
        cluster=CLUSTER,
        taskDefinition="agent-worker",
        launchType="FARGATE",
        startedBy=f"ecs-svc/{queue}",
        tags=[{"key": "foundation:queue", "value": queue}],
    )
    return SimpleNamespace(task_arn=run["tasks"][0]["taskArn"], cluster_name=CLUSTER)


def worker_role(moto_aws: MotoAws, queue: str) -> Credentials:
    """What catalog.yaml's celery_worker.protect grants the DAG whose queue this is."""
    statement = {
        "Effect": "Allow",
        "Action": ["ecs:UpdateTaskProtection", "ecs:GetTaskProtection"],
        "Resource": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{CLUSTER}/*",
        "Condition": {
            "ArnEquals": {"ecs:cluster": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{CLUSTER}"},
            "StringEquals": {"aws:ResourceTag/foundation:queue": queue},
        },
    }
    return moto_aws.user_with("agent-worker", [[statement]])


def test_a_worker_protects_its_own_task_through_its_agent_uri(
    moto_aws: MotoAws, agent: LocalEcsAgent
) -> None:
    task = task_of(moto_aws, "q-a")
    uri = agent.environment(task, session(worker_role(moto_aws, "q-a")))["ECS_AGENT_URI"]
    task_id = task.task_arn.rsplit("/", 1)[1]
    assert uri == f"http://127.0.0.1:{agent._server.server_port}/api/{task_id}"

    status, answer = request(uri, "PUT", b'{"ProtectionEnabled": true, "ExpiresInMinutes": 60}')
    assert (status, answer["protection"]["ProtectionEnabled"]) == (200, True)
    assert answer["protection"]["TaskArn"] == task.task_arn
    [protected] = moto_aws.client("ecs").get_task_protection(
        cluster=CLUSTER, tasks=[task.task_arn]
    )["protectedTasks"]
    expires = protected["expirationDate"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert answer["protection"]["ExpirationDate"] == expires
    assert request(uri, "GET") == (200, answer)
    assert request(uri, "PUT", b'{"ProtectionEnabled": false}') == (
        200,
        {
            "protection": {
                "ExpirationDate": None,
                "ProtectionEnabled": False,
                "TaskArn": task.task_arn,
            }
        },
    )
    assert [(c.method, c.body, c.status) for c in agent.calls] == [
        ("PUT", {"ProtectionEnabled": True, "ExpiresInMinutes": 60}, 200),
        ("GET", None, 200),
        ("PUT", {"ProtectionEnabled": False}, 200),
    ]


def test_another_services_task_is_refused_with_ecs_own_answer(
    moto_aws: MotoAws, agent: LocalEcsAgent
) -> None:
    task = task_of(moto_aws, "q-b")
    role = worker_role(moto_aws, "q-a")
    uri = agent.environment(task, session(role))["ECS_AGENT_URI"]
    with pytest.raises(ClientError) as direct:
        moto_aws.client("ecs", role).update_task_protection(
            cluster=CLUSTER, tasks=[task.task_arn], protectionEnabled=True
        )
    ecs = direct.value.response
    assert ecs["ResponseMetadata"]["HTTPStatusCode"] == 403
    status, answer = request(uri, "PUT", b'{"ProtectionEnabled": true}')
    assert (status, answer["error"]) == (
        403,
        {"Arn": task.task_arn, "Code": ecs["Error"]["Code"], "Message": ecs["Error"]["Message"]},
    )
    assert set(answer) == {"requestID", "error"}


def test_requests_the_agent_refuses_itself(moto_aws: MotoAws, agent: LocalEcsAgent) -> None:
    task = task_of(moto_aws, "q-a")
    uri = agent.environment(task, session(worker_role(moto_aws, "q-a")))["ECS_AGENT_URI"]
    decode = {"Arn": "", "Code": "InvalidParameterException"}
    assert request(uri, "PUT", b'{"ProtectionEnabled": true, "Forever": true}') == (
        400,
        {"error": decode | {"Message": "UpdateTaskProtection: failed to decode request"}},
    )
    assert request(uri, "PUT", b"{}") == (
        400,
        {
            "error": {
                "Arn": task.task_arn,
                "Code": "InvalidParameterException",
                "Message": "Invalid request: does not contain 'ProtectionEnabled' field",
            }
        },
    )
    roleless = task_of(moto_aws, "q-c")
    uri = agent.environment(roleless, None)["ECS_AGENT_URI"]
    assert request(uri, "GET") == (
        403,
        {
            "error": {
                "Arn": roleless.task_arn,
                "Code": "AccessDeniedException",
                "Message": "Invalid Request: no task IAM role credentials available for task",
            }
        },
    )
    unknown = uri.rsplit("/", 1)[0] + "/not-a-task"
    assert request(unknown, "GET") == (
        404,
        {
            "error": {
                "Arn": "",
                "Code": "ResourceNotFoundException",
                "Message": "Invalid request: no task was found",
            }
        },
    )
