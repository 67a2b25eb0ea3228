"""What moto's server (5.2.5) lacks outside CloudFormation (moto_cfn.py has that), for the
cluster to run on it as on AWS.

1. moto checks most services' calls against the resource "*" (only S3, SQS, IAM and STS name
the real ARN), so a role granted one secret, parameter, table or task definition is refused
everything there. This names the resource the call acts on, as IAM does, for the services the
cluster's components and tasks call with resource-level grants:

| service | calls | resource |
|---|---|---|
| secretsmanager | any with `SecretId` | the secret's ARN (its random suffix included) |
| ssm | any with `Name`; GetParameters | `parameter/<name>`; each of `Names`, each authorized |
| dynamodb | any with `TableName` | `table/<name>` |
| ecs | RunTask, StartTask | the task definition's ARN, with its revision |
| ecs | DescribeTasks, StopTask, Update/GetTaskProtection | each task's ARN, each authorized |

Other calls naming several resources (BatchGetItem), or none, keep "*". moto still
evaluates no condition: the toolkit's IAM evaluation covers them (foundation/iam/evaluate.py).

2. ECS's StopTask of an unknown task answers InvalidParameterException "The referenced task was
   not found." (the ECS executor's health check counts on it); moto raises a bare exception (500).
3. S3 authorizes HeadBucket as `s3:ListBucket` (there is no `s3:HeadBucket` action); moto
   checks an action of that name, which no policy can grant.

4. moto evaluates no condition of an identity policy. After moto allows a call, the toolkit's
   IAM evaluation (foundation/iam/evaluate.py) decides it again with the condition keys the
   request carries, for those keys this can read off a request (CONDITION_KEYS): a ListBucket's
   `s3:prefix` and `s3:delimiter` (absent from HeadBucket, as on S3), `ecs:cluster`, and for
   an ECS call on a task, `aws:ResourceTag/<key>` of that task's tags (a key the task lacks
   fails a positive operator, as on AWS). Conditions on other keys still hold, as moto has them.
   iam:PassRole is still never checked.

5. moto matches a policy's actions and resources as regular expressions with `*` made `.*`:
   `?` (a secret's `name-??????`) fails the request with a 500, and `.` matches anything. They
   are matched with IAM's wildcards instead (foundation/iam/evaluate.py's `glob`), actions
   case-insensitively.

6. ECS task scale-in protection (UpdateTaskProtection, GetTaskProtection), which moto lacks: a
   task's protection is kept on moto's task (`protection`: enabled and its expiry), 120 minutes
   unless `expiresInMinutes` (1 to 2,880) says otherwise, cleared once expired. A task no service
   started fails with TASK_NOT_VALID, an unknown one with MISSING.

7. moto enforces no SQS queue policy. After moto allows a call on a queue, the explicit denies
   of the queue's policy (moto_cfn.py sets it from the template) are evaluated by the toolkit's
   IAM evaluation with `aws:PrincipalArn` (the caller's user, or the role of its session with
   the role's path) and `aws:SecureTransport` true: every AWS SDK call to AWS is over TLS, the
   plain HTTP to the local server stands for it.

8. Every refused request is kept in DENIED (caller, action, resource and the condition keys
   read), for `foundation dev` to say which manifest entry would allow it.

Apply in the process moto's server runs in, before it serves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Denial:
    principal: str  # the caller's ARN (an assumed role's: arn:aws:sts::...:assumed-role/R/S)
    action: str
    resource: str
    context: dict[str, str] = field(default_factory=dict)


DENIED: list[Denial] = []  # in the order refused; appended from moto's request threads


def _secret(response: Any) -> str:
    secret_id = response._get_param("SecretId")
    if not secret_id:
        return "*"
    secret = response.backend.secrets.get(secret_id)
    if secret is not None:
        return secret.arn
    return f"arn:aws:secretsmanager:{response.region}:{response.current_account}:secret:{secret_id}"


def _parameter(response: Any) -> str | list[str]:
    prefix = f"arn:aws:ssm:{response.region}:{response.current_account}:parameter/"
    names = response._get_param("Names")  # GetParameters: each (what the ECS agent calls)
    if names and response._get_action() == "GetParameters":
        return [prefix + name.lstrip("/") for name in names]
    name = response._get_param("Name")
    if not name:
        return "*"
    return prefix + name.lstrip("/")


def _table(response: Any) -> str:
    table = response._get_param("TableName")
    if not table:
        return "*"
    return f"arn:aws:dynamodb:{response.region}:{response.current_account}:table/{table}"


def _ecs(response: Any) -> str | list[str]:
    action = response._get_action()
    if action in ("RunTask", "StartTask"):
        wanted = response._get_param("taskDefinition")
        try:
            return response.ecs_backend.describe_task_definition(wanted).arn
        except Exception:  # unknown: RunTask itself answers that
            return "*"
    tasks = response._get_param("tasks") or [response._get_param("task")]
    if action in TASK_ACTIONS and all(tasks):
        cluster = (response._get_param("cluster") or "default").rsplit("/", 1)[-1]
        prefix = f"arn:aws:ecs:{response.region}:{response.current_account}:task/{cluster}/"
        return [t if t.startswith("arn:") else prefix + t for t in tasks]
    return "*"


def _each(authorize: Any) -> Any:
    """IAM authorizes a call on several resources only if it may act on each."""

    def authorize_each(self: Any, resource: str | list[str] = "*") -> None:
        for one in resource if isinstance(resource, list) else [resource]:
            authorize(self, one)

    authorize_each.__wrapped__ = authorize  # type: ignore[attr-defined]
    return authorize_each


def _stop_known_tasks(stop_task: Any) -> Any:
    def stop_task_or_answer(self: Any, cluster_str: str, task_str: str, reason: str) -> Any:
        from moto.ecs.exceptions import InvalidParameterException

        task_id = task_str.rsplit("/", 1)[-1]
        tasks = self.tasks.get(self._get_cluster(cluster_str).name, {})
        if not any(arn.endswith(task_id) for arn in tasks):
            raise InvalidParameterException("The referenced task was not found.")
        return stop_task(self, cluster_str, task_str, reason)

    stop_task_or_answer.__wrapped__ = stop_task
    return stop_task_or_answer


CONDITION_KEYS = frozenset({"s3:prefix", "s3:delimiter", "ecs:cluster"})
RESOURCE_TAG = "aws:ResourceTag/"
# The ECS calls that act on tasks named by ARN or id (their resource is each task).
TASK_ACTIONS = ("DescribeTasks", "StopTask", "UpdateTaskProtection", "GetTaskProtection")
# The ECS calls whose requests carry ecs:cluster (the Service Authorization Reference).
ECS_CLUSTER_ACTIONS = frozenset(
    {
        "RunTask",
        "StartTask",
        "StopTask",
        "DescribeTasks",
        "ListTasks",
        "UpdateTaskProtection",
        "GetTaskProtection",
        "CreateService",
        "UpdateService",
        "DeleteService",
        "DescribeServices",
    }
)


def _first(value: Any) -> str | None:
    return value[0] if isinstance(value, list) and value else value


def _context(request: Any) -> dict[str, str] | None:
    """The keys of CONDITION_KEYS this request carries; None for calls they do not concern."""
    service = request._action.split(":", 1)[0]
    if request._action == "s3:ListBucket":  # the request's query string
        data = request._data or {}
        keys = {
            "s3:prefix": _first(data.get("prefix")),
            "s3:delimiter": _first(data.get("delimiter")),
        }
        return {k: v for k, v in keys.items() if v is not None}
    if service == "ecs" and request._action.split(":", 1)[1] in ECS_CLUSTER_ACTIONS:
        import json

        try:
            body = json.loads(request._body or b"{}")
        except ValueError:
            return None
        cluster = body.get("cluster") or "default"
        if not cluster.startswith("arn:"):
            cluster = f"arn:aws:ecs:{request._region}:{request.account_id}:cluster/{cluster}"
        return {"ecs:cluster": cluster}
    return None


def _task_tags(request: Any, resource: str) -> dict[str, str] | None:
    """`aws:ResourceTag/<key>` of the ECS task the call acts on; None if it acts on no task."""
    if request._action.split(":", 1)[1] not in TASK_ACTIONS or ":task/" not in resource:
        return None
    from moto.ecs.models import ecs_backends

    backend = ecs_backends[request.account_id][request._region]
    task = next((t[resource] for t in backend.tasks.values() if resource in t), None)
    return {RESOURCE_TAG + tag["key"]: tag["value"] for tag in (task.tags if task else [])}


def _statements(policy: Any) -> list[dict[str, Any]]:
    from moto.iam.access_control import IAMPolicy

    listed = IAMPolicy(policy)._policy_json.get("Statement", [])
    return listed if isinstance(listed, list) else [listed]


def _with_conditions(check: Any) -> Any:
    def check_with_conditions(self: Any, resource: str) -> None:
        from foundation.iam.evaluate import Request, allows

        context = _context(self)
        try:
            check(self, resource)  # moto's own decision: actions, resources, explicit denies
            if _queue_policy_refuses(self, resource):
                self._raise_access_denied()
            if context is None:
                return
            statements = [s for p in self._access_key.collect_policies() for s in _statements(p)]
            if any("NotAction" in s or "NotResource" in s for s in statements):
                return  # shapes the toolkit's evaluation does not read: moto's decision stands
            allowing = [s for s in statements if s.get("Effect") == "Allow"]
            known = CONDITION_KEYS
            tags = _task_tags(self, resource)
            if tags is not None:
                context = context | tags
                known = known | {
                    key
                    for s in allowing
                    for pairs in s.get("Condition", {}).values()
                    for key in pairs
                    if key.startswith(RESOURCE_TAG)
                }
            if not allows(allowing, Request(self._action, resource, context), known):
                self._raise_access_denied()
        except Exception:
            DENIED.append(Denial(self._access_key.arn, self._action, resource, context or {}))
            raise

    check_with_conditions.__wrapped__ = check
    return check_with_conditions


def _principal_arn(request: Any) -> str:
    """aws:PrincipalArn: a user's ARN, or the ARN of the role a session was made from."""
    key = request._access_key
    role = getattr(key, "_owner_role_name", None)
    return key.arn if role is None else key.backend.get_role(role).arn


def _queue_policy_refuses(request: Any, resource: str) -> bool:
    if not request._action.startswith("sqs:") or ":sqs:" not in resource:
        return False
    import json

    from moto.sqs.models import sqs_backends

    from foundation.iam.evaluate import Request, listed, refuses

    queues = sqs_backends[request.account_id][request._region].queues
    queue = queues.get(resource.rsplit(":", 1)[-1])
    if queue is None or not queue.policy:
        return False
    statements = listed(json.loads(queue.policy).get("Statement", []))
    context = {"aws:PrincipalArn": _principal_arn(request), "aws:SecureTransport": "true"}
    return refuses(statements, Request(request._action, resource, context))


def _iam_match(pattern: str, value: str) -> bool | None:
    from foundation.iam.evaluate import glob

    # moto reads truthiness, or `is not None`: None for no match
    return glob(pattern, value, case_sensitive=value.startswith("arn:")) or None


def apply() -> None:
    from moto.ecs.models import EC2ContainerServiceBackend
    from moto.iam.access_control import IAMPolicyStatement, IAMRequestBase
    from moto.s3.responses import ACTION_MAP

    ACTION_MAP["BUCKET"]["HEAD"]["DEFAULT"] = "ListBucket"
    IAMPolicyStatement._match = staticmethod(_iam_match)
    if not hasattr(IAMRequestBase.check_action_permitted, "__wrapped__"):
        IAMRequestBase.check_action_permitted = _with_conditions(
            IAMRequestBase.check_action_permitted
        )

    if not hasattr(EC2ContainerServiceBackend.stop_task, "__wrapped__"):
        EC2ContainerServiceBackend.stop_task = _stop_known_tasks(
            EC2ContainerServiceBackend.stop_task
        )
    _enforce_resource_arns()
    _task_protection()


MAX_PROTECTION_MINUTES = 2880
DEFAULT_PROTECTION_MINUTES = 120


def _protection(task: Any) -> dict[str, Any]:
    from datetime import UTC, datetime

    expires = getattr(task, "protection_expires", None)
    if expires is not None and expires <= datetime.now(UTC):
        task.protection_expires = expires = None
    listed = {"taskArn": task.task_arn, "protectionEnabled": expires is not None}
    return listed | ({"expirationDate": expires} if expires else {})


def protected(task: Any) -> bool:
    """Whether moto's ECS task has scale-in protection on now."""
    return _protection(task)["protectionEnabled"]


def _protected_tasks(response: Any, change: Any) -> Any:
    """Each task named in the request, changed by `change` (None: read only), as ECS answers."""
    from moto.core.responses import ActionResult

    backend = response.ecs_backend
    cluster = backend._get_cluster(response._get_param("cluster") or "default")
    tasks = backend.tasks.get(cluster.name, {})
    protected, failures = [], []
    for wanted in response._get_param("tasks", []):
        task_id = wanted.rsplit("/", 1)[-1]
        task = next((t for arn, t in tasks.items() if arn.rsplit("/", 1)[-1] == task_id), None)
        if task is None:
            failures.append({"arn": wanted, "reason": "MISSING"})
        elif not task.started_by.startswith("ecs-svc/"):
            failures.append({"arn": task.task_arn, "reason": "TASK_NOT_VALID"})
        else:
            if change:
                change(task)
            protected.append(_protection(task))
    return ActionResult({"protectedTasks": protected, "failures": failures})


def update_task_protection(self: Any) -> Any:
    from datetime import UTC, datetime, timedelta

    from moto.ecs.exceptions import InvalidParameterException

    enabled = self._get_param("protectionEnabled")
    minutes = self._get_param("expiresInMinutes")
    if enabled and minutes is not None and not 1 <= minutes <= MAX_PROTECTION_MINUTES:
        raise InvalidParameterException(
            f"expiresInMinutes must be between 1 and {MAX_PROTECTION_MINUTES}."
        )
    expires = None
    if enabled:
        expires = datetime.now(UTC) + timedelta(minutes=minutes or DEFAULT_PROTECTION_MINUTES)

    def change(task: Any) -> None:
        task.protection_expires = expires

    return _protected_tasks(self, change)


def get_task_protection(self: Any) -> Any:
    return _protected_tasks(self, None)


def _task_protection() -> None:
    from moto.ecs.responses import EC2ContainerServiceResponse

    EC2ContainerServiceResponse.update_task_protection = update_task_protection
    EC2ContainerServiceResponse.get_task_protection = get_task_protection


def _enforce_resource_arns() -> None:
    from moto.dynamodb.responses import DynamoHandler
    from moto.ecs.responses import EC2ContainerServiceResponse
    from moto.secretsmanager.responses import SecretsManagerResponse
    from moto.ssm.responses import SimpleSystemManagerResponse

    for response_class, resource in (
        (SecretsManagerResponse, _secret),
        (SimpleSystemManagerResponse, _parameter),
        (DynamoHandler, _table),
        (EC2ContainerServiceResponse, _ecs),
    ):
        response_class._determine_resource = resource
    for response_class in (EC2ContainerServiceResponse, SimpleSystemManagerResponse):
        authorize = response_class._authenticate_and_authorize_normal_action
        if not hasattr(authorize, "__wrapped__"):
            response_class._authenticate_and_authorize_normal_action = _each(authorize)
