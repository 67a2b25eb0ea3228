"""Find and load a project: the deployment config, every DAG manifest, and each DAG's policy."""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

from foundation import triggers
from foundation.airflow.runtime_files import chunks
from foundation.airflow.settings import task_delivered
from foundation.config import (
    BASE_ENDPOINT_SERVICES,
    DAG_ENDPOINT_SERVICES,
    FAB_BUILTIN_ROLES,
    NO_CALL_SERVICES,
    Deployment,
    FabAuth,
)
from foundation.errors import InvalidInput, Location, Problem
from foundation.iam import escape_hatch
from foundation.iam.coverage import Unit, overlap_warnings, redundancy_warnings
from foundation.iam.policy import (
    WORST_CASE,
    ArnContext,
    DagPolicy,
    Grant,
    Statement,
    grants,
    merge,
    number,
    render,
)
from foundation.iam.sizing import DoesNotFit, document_size, pack
from foundation.manifest import DagAccess, DagManifest, Egress
from foundation.naming import BASE_CONFIG, CONFIG_DIR, MANIFEST_DIR, worker_shard
from foundation.triggers import DEFAULT_TRIGGERS
from foundation.validation import parse
from foundation.yamlio import Document, FieldPath, format_path, load_mapping


@dataclass
class Dag:
    manifest: DagManifest
    file: Path
    policy: DagPolicy
    document: Document  # the manifest as read: where each field was written, its bytes' hash
    units: list[Unit] = field(default_factory=list)  # each grant, rendered, before merging

    @property
    def dag_id(self) -> str:
        return self.manifest.dag_id


@dataclass
class Project:
    root: Path
    deployment: Deployment
    dags: list[Dag]
    findings: list[Problem] = field(default_factory=list)  # checks that failed (exit 1)
    config: Document | None = None  # where each config field was written
    # what is valid but likely not what the user meant (shown; the exit code stays 0)
    warnings: list[Problem] = field(default_factory=list)
    # each file loaded -> its bytes' sha256; each folder of manifests listed -> its listing's
    read: dict[Path, str] = field(default_factory=dict)

    def still_as_read(self, folder: Path | None = None) -> bool:
        """Whether every file the load read (under `folder`, if given) still holds the bytes
        it read, and every folder it listed the entries it listed (a manifest moved away while
        the load ran, a file that is no manifest there only then)."""
        return all(
            _as_read(path) == digest
            for path, digest in self.read.items()
            if folder is None or path.is_relative_to(folder)
        )


def _as_read(path: Path) -> str | None:
    """What `path` holds now, as the load recorded it; None if it is gone (also meanwhile)."""
    try:
        if path.is_dir():
            return _listing(_visible(path))
        if path.is_file():  # not a FIFO put there, which reading would wait on
            return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        pass
    return None


@dataclass
class Memo:
    """What a process that loads the project again and again (`foundation synth --watch`) keeps
    of its last load: each manifest as parsed, by its path and bytes, and each DAG as built, by
    those and the deployment it was built for (nothing else goes into a DAG's policy). A load
    still reads every file; it parses and builds again only what differs. And each added
    trigger class that passed its check, by classpath (seconds each: a fresh interpreter imports
    Airflow); as in the record (foundation/record.py), a trigger's own module is not watched. A
    refused one is checked again: what the user fixes may be outside the inputs."""

    manifests: dict[tuple[Path, str], tuple[Document, DagManifest]] = field(default_factory=dict)
    dags: dict[tuple[str, Path, str], tuple[Dag, list[Problem]]] = field(default_factory=dict)
    triggers: set[str] = field(default_factory=set)


def load_project(root: Path, env: str | None = None, memo: Memo | None = None) -> Project:
    """Load and check everything; raise InvalidInput with every problem in the input."""
    root = root.resolve()
    last, kept = memo or Memo(), Memo()
    try:
        return _load_project(root, env, last, kept)
    finally:
        if memo:
            memo.manifests, memo.dags, memo.triggers = kept.manifests, kept.dags, kept.triggers


def _load_project(root: Path, env: str | None, last: Memo, kept: Memo) -> Project:
    listed: dict[Path, str] = {}
    manifests, problems, warnings = _load_manifests(root, listed, last, kept)
    try:
        deployment, config_doc, read = _load_config(root, env)
    except InvalidInput as err:
        raise InvalidInput(err.problems + problems) from None
    problems += _cross_check(deployment, config_doc, manifests)
    problems += _trigger_problems(deployment, config_doc, last, kept)
    project = Project(root, deployment, [], config=config_doc, warnings=warnings, read=read)
    project.read |= listed | {doc.file: doc.sha256 for doc, _ in manifests}
    built_for = deployment.model_dump_json()
    for doc, manifest in manifests:
        key = (built_for, doc.file, doc.sha256)
        dag, found = last.dags.get(key) or _build_policy(root, deployment, doc, manifest)
        kept.dags[key] = (dag, found)
        problems += found
        project.dags.append(dag)
    if problems:
        raise InvalidInput(problems)
    for dag in project.dags:
        if dag.policy.does_not_fit:
            project.findings.append(Problem(dag.file, 0, "permissions", dag.policy.does_not_fit))
    project.findings += _unreachable_services(project)
    project.findings += _crowded_worker_stacks(project)
    project.warnings += _grant_warnings(project)
    project.warnings.sort(key=lambda p: (str(p.file), p.line, p.field))
    return project


def shards(project: Project) -> dict[int, list[Dag]]:
    """Each worker stack's DAGs, by shard (config `worker_stacks`), in shard order."""
    assigned: dict[int, list[Dag]] = defaultdict(list)
    for dag in project.dags:
        assigned[worker_shard(dag.dag_id, project.deployment.worker_stacks)].append(dag)
    return dict(sorted(assigned.items()))


STACK_RESOURCE_LIMIT = 500
# A DAG's resources besides its managed policies: role, security group, task definition and
# identity parameter; in Celery mode also its queue and queue policy, service, scalable target,
# two scaling policies and two alarms.
DAG_RESOURCES = {"ecs": 4, "celery": 12}


def stack_loads(project: Project, shards: int) -> dict[int, int]:
    """Each worker stack's resources: its DAGs', and the parameters of what it delivers to
    their containers (Celery mode: stacks/constructs/delivery.py)."""
    per_dag = DAG_RESOURCES[project.deployment.airflow.executor]
    delivered = task_delivered(project.deployment).values()
    loads: dict[int, int] = defaultdict(lambda: sum(len(chunks(value)) for value in delivered))
    for dag in project.dags:
        loads[worker_shard(dag.dag_id, shards)] += per_dag + len(dag.policy.policies)
    return loads


def _crowded_worker_stacks(project: Project) -> list[Problem]:
    """CloudFormation takes 500 resources per stack: say so before CDK refuses the app."""
    shards = project.deployment.worker_stacks
    loads = stack_loads(project, shards)
    if not loads or max(loads.values()) <= STACK_RESOURCE_LIMIT:
        return []
    needed = next(
        (
            n
            for n in range(shards + 1, 201)
            if max(stack_loads(project, n).values()) <= STACK_RESOURCE_LIMIT
        ),
        None,
    )
    fix = f"raise it to {needed}" if needed else "no count up to 200 is enough: split the project"
    message = (
        f"a worker stack would hold {max(loads.values())} resources (CloudFormation's limit is "
        f"{STACK_RESOURCE_LIMIT}) with {len(project.dags)} DAGs in {shards} stack(s): {fix} "
        "(changing worker_stacks moves DAGs between stacks: choose it before the first deploy)"
    )
    return [project.config.problem(("worker_stacks",), message)]


def load_deployment(root: Path, env: str | None = None) -> Deployment:
    """The deployment alone, from config/ and the --env overlay; InvalidInput if it is not
    valid."""
    return _load_config(root, env)[0]


def _load_config(root: Path, env: str | None) -> tuple[Deployment, Document, dict[Path, str]]:
    """The deployment, its config document, and each file read with its bytes' sha256."""
    base = root / CONFIG_DIR / BASE_CONFIG
    if not base.is_file():
        raise InvalidInput(
            [
                Problem(
                    base,
                    0,
                    "",
                    "not found: a project holds config/foundation.yaml and "
                    "dag_permissions/<dag_id>.yaml (use --project to point at one)",
                )
            ]
        )
    doc = load_mapping(base)
    read = {base: doc.sha256}
    if env is not None:
        overlay = root / CONFIG_DIR / f"{env}.yaml"
        if not re.fullmatch(r"[A-Za-z0-9_-]+", env) or env == "foundation":
            raise InvalidInput([Problem(overlay, 0, "", f"--env {env!r} is not a valid name")])
        if not overlay.is_file():
            raise InvalidInput([Problem(overlay, 0, "", f"--env {env}: no such file")])
        top = load_mapping(overlay)
        read[overlay] = top.sha256
        doc = overlay_document(doc, top)
    return parse(doc, Deployment), doc, read


def overlay_document(base: Document, top: Document) -> Document:
    """Deep-merge `top` onto `base`: mappings merge key by key, anything else is replaced."""
    locations = dict(base.locations)

    def merge_into(a: Any, b: Any, path: FieldPath) -> Any:
        if isinstance(a, dict) and isinstance(b, dict):
            out = dict(a)
            for key, value in b.items():
                out[key] = merge_into(a[key], value, (*path, key)) if key in a else value
                if key not in a:
                    _take_locations(locations, top, (*path, key))
            locations[path] = top.locations.get(path, locations.get(path, Location(top.file, 1)))
            return out
        _take_locations(locations, top, path)
        return b

    data = merge_into(base.data, top.data, ())
    return Document(top.file, data, locations)


def _take_locations(locations: dict, top: Document, path: FieldPath) -> None:
    for key in [k for k in locations if k[: len(path)] == path]:
        del locations[key]
    locations.update({k: v for k, v in top.locations.items() if k[: len(path)] == path})


YAML_SUFFIXES = (".yaml", ".yml")
NOT_A_MANIFEST = (
    "every YAML file in dag_permissions/ is read as one DAG's manifest; move other files out"
)


def _load_manifests(
    root: Path, listed: dict[Path, str], last: Memo, kept: Memo
) -> tuple[list[tuple[Document, DagManifest]], list[Problem], list[Problem]]:
    """Every manifest (as `last` parsed it, if its bytes are the same), the problems found, and
    warnings for files that are not read; each folder listed goes into `listed` with its
    listing's hash."""
    folder = root / MANIFEST_DIR
    if not folder.is_dir():
        return [], [Problem(folder, 0, "", "not found: put one <dag_id>.yaml per DAG here")], []
    loaded, problems, warnings = [], [], []
    visible = _visible(folder)
    listed[folder] = _listing(visible)
    for path in visible:
        if path.is_dir():
            found, unread = _subfolder(path, listed)
            problems += found
            warnings += unread
        elif not _is_yaml(path):
            warnings.append(_not_read(path))
        else:
            try:
                loaded.append(_remembered(path, last) or _load_manifest(path))
                kept.manifests[(path, loaded[-1][0].sha256)] = loaded[-1]
            except InvalidInput as err:
                problems += err.problems
    return loaded, problems, warnings


def _visible(folder: Path) -> list[Path]:
    """A folder's entries, in name order, but hidden ones (`.gitkeep`, `.DS_Store`, editors'
    swap files) that are not YAML."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") or _is_yaml(p))


def _listing(paths: list[Path]) -> str:
    """The entries' names and kinds, as the loader tells them apart."""
    kinds = [f"{p.name}\0{p.is_dir():d}{p.is_symlink():d}" for p in paths]
    return hashlib.sha256("\0".join(kinds).encode()).hexdigest()


def _is_yaml(path: Path) -> bool:
    return path.suffix.lower() in YAML_SUFFIXES


def _not_read(path: Path) -> Problem:
    return Problem(path, 1, "", "not read: only <dag_id>.yaml (or .yml) files are DAG manifests")


def _subfolder(folder: Path, listed: dict[Path, str]) -> tuple[list[Problem], list[Problem]]:
    """Manifests are read from dag_permissions/ itself: a YAML file below it would silently
    give its DAG no identity, so it is an error; any other file is a warning."""
    problems, warnings = [], []
    visible = _visible(folder)
    listed[folder] = _listing(visible)
    for path in visible:
        if path.is_dir() and not path.is_symlink():
            found, unread = _subfolder(path, listed)
            problems += found
            warnings += unread
        elif _is_yaml(path):
            message = (
                "manifests are read from dag_permissions/ itself, not from its subfolders: "
                f"move it to {MANIFEST_DIR}/{path.name}, or its DAG has no identity"
            )
            problems.append(Problem(path, 1, "", message))
        else:
            warnings.append(_not_read(path))
    return problems, warnings


def _remembered(path: Path, last: Memo) -> tuple[Document, DagManifest] | None:
    if not last.manifests:
        return None
    try:
        return last.manifests.get((path, hashlib.sha256(path.read_bytes()).hexdigest()))
    except OSError:
        return None  # loading it says why


def _load_manifest(path: Path) -> tuple[Document, DagManifest]:
    doc = load_mapping(path)
    if "dag_id" not in doc.data:
        raise InvalidInput(
            [Problem(path, 1, "", f"not a DAG manifest (no dag_id): {NOT_A_MANIFEST}")]
        )
    manifest = parse(doc, DagManifest)
    if manifest.dag_id != path.stem:
        message = f"dag_id {manifest.dag_id!r} must match the file name ({path.stem!r})"
        raise InvalidInput([doc.problem(("dag_id",), message)])
    return doc, manifest


def _cross_check(
    deployment: Deployment, config_doc: Document, manifests: list[tuple[Document, DagManifest]]
) -> list[Problem]:
    """Rules that need more than one file: collisions, config references, reserved names."""
    problems = []
    by_folded: dict[str, list[tuple[Document, DagManifest]]] = defaultdict(list)
    for doc, manifest in manifests:
        by_folded[manifest.dag_id.lower()].append((doc, manifest))
    for group in by_folded.values():
        for doc, manifest in group[1:]:
            other = group[0][1].dag_id
            message = (
                f"{manifest.dag_id!r} and {other!r} differ only in case; AWS names (IAM roles) "
                "are case-insensitive, so each DAG needs a dag_id of its own"
            )
            problems.append(doc.problem(("dag_id",), message))
    problems += _name_collisions(deployment, manifests)
    known = {m.dag_id for _, m in manifests}
    for i, dag_id in enumerate(deployment.iam.allow_escalation_for):
        if dag_id not in known:
            path = ("iam", "allow_escalation_for", i)
            problems.append(config_doc.problem(path, f"{dag_id!r} has no manifest"))
    for doc, manifest in manifests:
        problems += _reserved_buckets(deployment, doc, manifest)
        problems += _access_problems(deployment, doc, manifest)
        problems += _bundle_problems(deployment, doc, manifest)
    if deployment.image_problem:
        problems.append(config_doc.problem(("airflow", "image"), deployment.image_problem))
    problems += [config_doc.problem(at, why) for at, why in deployment.bundle_problems()]
    return problems


def _trigger_problems(
    deployment: Deployment, config_doc: Document, last: Memo, kept: Memo
) -> list[Problem]:
    """Each added trigger class imports, in a fresh interpreter of this environment's Airflow,
    to a trigger that loads no AWS SDK (the defaults are checked by the test suite)."""
    extra = deployment.airflow.triggers
    for i, classpath in enumerate(extra):
        if classpath in extra[:i] or classpath in DEFAULT_TRIGGERS:
            where = "listed twice" if classpath in extra[:i] else "allowed by default"
            return [config_doc.problem(("airflow", "triggers", i), f"{classpath} is {where}")]
    problems = []
    for i, classpath in enumerate(extra):
        if classpath in last.triggers or not (why := triggers.check(classpath)):
            kept.triggers.add(classpath)
        else:
            problems.append(config_doc.problem(("airflow", "triggers", i), why))
    return problems


def dag_services(project: Project) -> set[str]:
    """The AWS services DAGs' statements grant actions of (by IAM action prefix)."""
    return {
        action.split(":", 1)[0].lower()
        for dag in project.dags
        for policy in dag.policy.policies
        for statement in policy
        for action in statement.actions
    }


@dataclass(frozen=True)
class ClusterInputs:
    """What network, data and core read of the manifests (the rest is config)."""

    dag_services: frozenset[str]
    dag_access: dict[str, DagAccess]

    def key(self) -> str:
        """The manifests' part of the cluster stacks' inputs, as text."""
        access = {d: a.model_dump(mode="json") for d, a in sorted(self.dag_access.items())}
        return json.dumps([sorted(self.dag_services), access], sort_keys=True)


def cluster_inputs(project: Project) -> ClusterInputs:
    return ClusterInputs(
        frozenset(dag_services(project)),
        {d.dag_id: d.manifest.access for d in project.dags if d.manifest.access},
    )


def _unreachable_services(project: Project) -> list[Problem]:
    """With private endpoints, a DAG granted a service no endpoint serves could never reach it,
    unless its manifest declares egress of its own."""
    if not project.deployment.network.private_endpoints:
        return []
    reachable = BASE_ENDPOINT_SERVICES | DAG_ENDPOINT_SERVICES | NO_CALL_SERVICES
    found = []
    for dag in project.dags:
        if dag.manifest.network.egress:
            continue
        services = dag_services(Project(project.root, project.deployment, [dag]))
        for service in sorted(services - reachable):
            found.append(
                Problem(
                    dag.file,
                    0,
                    "permissions",
                    f"{service} has no VPC endpoint and network.private_endpoints leaves tasks no "
                    "other way; declare network.egress for it",
                )
            )
    return found


def _name_collisions(
    deployment: Deployment, manifests: list[tuple[Document, DagManifest]]
) -> list[Problem]:
    """Derived AWS names carry a hash of the dag_id; two DAGs still must never share one."""
    seen: dict[str, str] = {}
    problems = []
    for doc, manifest in manifests:
        role = deployment.dag_names(manifest.dag_id).role.lower()
        if role in seen and seen[role].lower() != manifest.dag_id.lower():
            message = f"derives the same AWS names as {seen[role]!r}; rename one of the two DAGs"
            problems.append(doc.problem(("dag_id",), message))
        seen.setdefault(role, manifest.dag_id)
    return problems


def _access_problems(deployment: Deployment, doc: Document, manifest: DagManifest) -> list:
    if manifest.access is None:
        return []
    if not isinstance(deployment.web.auth, FabAuth):
        message = (
            "DAG-level access needs web.auth manager: fab (the simple auth manager's roles "
            "cover every DAG)"
        )
        return [doc.problem(("access",), message)]
    problems = []
    for level in ("view", "trigger", "edit"):
        for i, role in enumerate(getattr(manifest.access, level)):
            if role in FAB_BUILTIN_ROLES:
                message = (
                    f"{role!r} is one of Airflow's own roles, which already reach every DAG; "
                    "name a role of your own (config web.auth.ldap.roles_mapping maps groups to it)"
                )
                problems.append(doc.problem(("access", level, i), message))
    return problems


def _reserved_buckets(deployment: Deployment, doc: Document, manifest: DagManifest) -> list:
    message = f"this bucket {escape_hatch.RESERVED_BUCKET_MESSAGE}"
    problems = [
        doc.problem(("permissions", "s3", i, "bucket"), message)
        for i, s3 in enumerate(manifest.permissions.s3)
        if deployment.reserved_resource("s3", s3.bucket)
    ]
    athena = manifest.permissions.athena
    if athena and deployment.reserved_resource("s3", athena.results.bucket):
        problems.append(doc.problem(("permissions", "athena", "results", "bucket"), message))
    for i, secret in enumerate(manifest.permissions.secrets):
        if deployment.reserved_secret(secret):
            message = (
                f"{secret!r} is the toolkit's (any deployment's <name>/cluster/ and "
                f"<name>/dags/, this one's under {deployment.name}/, the DAG bundle's key, the "
                "web login's): this DAG's own secrets live under "
                f"{deployment.namespace.dag_secrets_root}<dag_id>/ and need no entry"
            )
            problems.append(doc.problem(("permissions", "secrets", i), message))
    for i, rs in enumerate(manifest.permissions.redshift_data):
        if rs.secret and deployment.reserved_secret(rs.secret):
            message = (
                f"{rs.secret!r} is the toolkit's (any deployment's <name>/cluster/ and "
                f"<name>/dags/, this one's under {deployment.name}/, the DAG bundle's key, the "
                "web login's): keep the Data API's secret under a name of your own"
            )
            problems.append(doc.problem(("permissions", "redshift_data", i, "secret"), message))
    for i, queue in enumerate(manifest.permissions.sqs):
        if deployment.reserved_resource("sqs", queue.queue):
            message = f"{queue.queue!r} is a Celery queue of a cluster's; no DAG may use it"
            problems.append(doc.problem(("permissions", "sqs", i, "queue"), message))
    for i, table in enumerate(manifest.permissions.dynamodb):
        if deployment.reserved_resource("dynamodb", f"table/{table.table}"):
            message = f"{table.table!r} holds the cluster's Celery results; no DAG may use it"
            problems.append(doc.problem(("permissions", "dynamodb", i, "table"), message))
    for i, passed in enumerate(manifest.permissions.pass_roles):
        if deployment.reserved_resource("iam", f"role/{passed.role}"):
            message = f"{passed.role!r} is one of a cluster's roles; no DAG may pass it"
            problems.append(doc.problem(("permissions", "pass_roles", i, "role"), message))
    return problems


def _bundle_problems(deployment: Deployment, doc: Document, manifest: DagManifest) -> list:
    """A manifest names the bundle its dag_id may come from: one that is configured, and it
    must name one when there are several."""
    names = [b.name for b in deployment.bundles]
    configured = ", ".join(map(repr, names))
    if manifest.bundle is None:
        if len(names) == 1:
            return []
        message = f"required with several bundles: name the one this DAG comes from ({configured})"
        return [doc.problem(("bundle",), message)]
    if manifest.bundle in names:
        return []
    which = f"this deployment's is {configured}" if len(names) == 1 else f"configured: {configured}"
    return [doc.problem(("bundle",), f"bundle {manifest.bundle!r} is not configured; {which}")]


def _grant_warnings(project: Project) -> list[Problem]:
    """Grants that add nothing to their DAG's others, egress every task has already, and DAGs
    whose grants reach the same S3 objects."""
    warnings, adding = [], {}
    for dag in project.dags:
        spare, adding[dag.dag_id] = redundancy_warnings(dag.units)
        warnings += spare + _egress_warnings(project.deployment, dag)
    return warnings + overlap_warnings(adding)


def _egress_warnings(deployment: Deployment, dag: Dag) -> list[Problem]:
    """Egress rules the DAG's tasks have already: from the security group every task shares,
    or from an earlier or wider rule of the same manifest."""
    doc = dag.document
    rules = dag.manifest.network.egress
    warnings = []
    for i, rule in enumerate(rules):
        at = ("network", "egress", i)
        shared = next((e for e in deployment.every_task_egress if _egress_covers(e, rule)), None)
        if shared:
            message = (
                f"adds nothing: every task may already open {shared.protocol} {shared.port} to "
                f"{shared.cidr} (the workers security group all DAGs' tasks share, for AWS APIs, "
                "while network.private_endpoints is false)"
            )
            warnings.append(doc.problem(at, message))
            continue
        wider = next(
            (
                j
                for j, other in enumerate(rules)
                if j != i and _egress_covers(other, rule) and (j < i or other != rule)
            ),
            None,
        )
        if wider is not None:
            where = doc.location_of(("network", "egress", wider))
            message = (
                f"adds nothing: network.egress[{wider}] (line {where.line}) already allows "
                f"{rule.protocol} {rule.port} to {rules[wider].cidr}"
            )
            warnings.append(doc.problem(at, message))
    return warnings


def _egress_covers(wide: Egress, narrow: Egress) -> bool:
    return (
        wide.protocol == narrow.protocol
        and wide.port == narrow.port
        and IPv4Network(narrow.cidr).subnet_of(IPv4Network(wide.cidr))
    )


class _Locator:
    """A manifest field -> the source its statements carry (`file:line field`); each field it
    named is kept, so a source leads back to its place in the file."""

    def __init__(self, root: Path, doc: Document) -> None:
        self.root, self.doc = root, doc
        self.entries: dict[str, FieldPath] = {}

    def __call__(self, path: FieldPath) -> str:
        where = self.doc.location_of(path)
        text = f"{where.file.relative_to(self.root)}:{where.line} {format_path(path)}"
        self.entries[text] = path
        return text

    def unit(self, source: str, statements: list[Statement]) -> Unit:
        path = self.entries.get(source)
        if path is None:
            return Unit(source, statements)
        return Unit(source, statements, self.doc.location_of(path), format_path(path))


def dag_grants(project: Project, dag: Dag) -> list[Grant]:
    """The DAG's grants (baseline and manifest, not its escape-hatch statements), each with
    the source its generated statements carry."""
    locate = _Locator(project.root, dag.document)
    return list(grants(dag.manifest, project.deployment, locate))


def _build_policy(
    root: Path, deployment: Deployment, doc: Document, manifest: DagManifest
) -> tuple[Dag, list[Problem]]:
    locate = _Locator(root, doc)
    rules = escape_hatch.Rules(
        deployment.partition,
        deployment.reserved_resource,
        manifest.dag_id in deployment.iam.allow_escalation_for,
        deployment.namespace.dag_secrets_root,
    )
    policy = DagPolicy(manifest.dag_id)
    problems = []
    ctx = ArnContext.of(deployment)
    units: list[tuple[list[Statement], list[Statement]]] = []
    rendered: list[Unit] = []
    for g in grants(manifest, deployment, locate):
        units.append((render(g, ctx), render(g, WORST_CASE)))
        rendered.append(locate.unit(g.source, units[-1][0]))
    for i, statement in enumerate(manifest.permissions.statements):
        at = ("permissions", "statements", i)
        checked = escape_hatch.check(statement, rules, locate(at))
        problems += [doc.problem((*at, *sub), message) for sub, message in checked.problems]
        policy.escalations += checked.escalations
        if checked.statement:
            units.append(([checked.statement], [checked.statement]))
            rendered.append(locate.unit(locate(at), [checked.statement]))
    try:
        bins = pack([worst for _, worst in units], deployment.iam.max_managed_policies_per_role)
    except DoesNotFit as err:
        policy.does_not_fit = str(err)
        bins = [list(range(len(units)))]
    policy.policies = [merge([s for i in b for s in units[i][0]]) for b in bins]
    number(policy.policies)
    worst_case = [merge([s for i in b for s in units[i][1]]) for b in bins]
    number(worst_case)
    policy.worst_case_sizes = [document_size(p) for p in worst_case]
    return Dag(manifest, doc.file, policy, doc, rendered), problems
