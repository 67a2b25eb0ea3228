"""Worker stacks hold a bounded number of DAGs, and a DAG never moves when others come or go."""

from __future__ import annotations

import random
from collections import Counter

from foundation.naming import DagNames, worker_shard

SHARDS = 32
RESOURCES_PER_DAG = 5  # role, managed policy, security group, task definition, SSM parameter


def dag_ids(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    words = ["sales", "orders", "eu", "daily", "Load", "v2", "report", "x.y", "raw-"]
    return sorted({"_".join(rng.choices(words, k=3)) + f"_{i}" for i in range(count)})


def test_a_thousand_dags_stay_within_cloudformation_limits() -> None:
    counts = Counter(worker_shard(d, SHARDS) for d in dag_ids(1000))
    assert len(counts) == SHARDS
    assert max(counts.values()) * RESOURCES_PER_DAG < 500 / 2  # room for larger DAGs


def test_adding_and_removing_dags_moves_no_other_dag() -> None:
    before = {d: worker_shard(d, SHARDS) for d in dag_ids(1000)}
    more = dag_ids(1500, seed=8)
    after = {d: worker_shard(d, SHARDS) for d in [*list(before)[::2], *more]}
    assert all(after[d] == before[d] for d in after if d in before)


def test_names_are_unique_ignoring_case_and_fit_aws_limits() -> None:
    ids = [*dag_ids(1000), "sales_eu", "sales.eu", "sales-eu", "Sales-EU", "x" * 250]
    names = [DagNames("acme-airflow-prod-01", d) for d in ids]
    roles = {n.role.lower() for n in names}
    assert len(roles) == len(ids)
    assert max(len(n.role) for n in names) <= 64
    assert max(len(n.managed_policy(9)) for n in names) <= 128
    assert max(len(n.task_family) for n in names) <= 255
    assert all(n.task_family.startswith("acme-airflow-prod-01--worker-") for n in names)
