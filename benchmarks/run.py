"""Speed and memory of validate and synth, on the shipped example and on generated projects,
and of incremental synth (one manifest edited, nothing changed) against a cold one.

    .venv/bin/python benchmarks/run.py [--dags 100 1000] [--executors ecs celery]
        [--rounds 3] [--incremental-dags 1000] [--only-incremental]

Each measurement runs in a fresh process (so imports and Node start-up count, as they do for a
user) and reports wall time and peak resident memory of that process and its children.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FOUNDATION = Path(sys.executable).with_name("foundation")


CELERY_IMAGE = "111122223333.dkr.ecr.us-east-1.amazonaws.com/airflow-celery:3.3.2"


def with_executor(folder: Path, executor: str, role_quota: int = 1000) -> None:
    """The example's config, in this executor mode (Celery with an image that has pycurl)."""
    shutil.copytree(ROOT / "config", folder / "config")
    text = (ROOT / "config" / "foundation.yaml").read_text()
    text = text.replace(
        "allow_escalation_for: []", f"allow_escalation_for: []\n  role_quota: {role_quota}"
    )
    if executor == "celery":
        # 13 resources per DAG: 32 stacks of ~31 DAGs would pass CloudFormation's 500
        text += "worker_stacks: 48\n" if role_quota > 1000 else ""
        text = text.replace("executor: ecs", "executor: celery")
        text = text.replace("image: apache/airflow:3.3.2", f"image: {CELERY_IMAGE}")
    (folder / "config" / "foundation.yaml").write_text(text)


def example_project(folder: Path, executor: str) -> Path:
    with_executor(folder, executor)
    shutil.copytree(ROOT / "dag_permissions", folder / "dag_permissions")
    return folder


def generated_project(folder: Path, count: int, executor: str) -> Path:
    # 1,000 DAGs need 1,006 roles: past IAM's default quota, which synth rightly refuses
    with_executor(folder, executor, role_quota=2000)
    (folder / "dag_permissions").mkdir()
    for i in range(count):
        dag_id = f"team{i % 37}_pipeline_{i}"
        manifest = {
            "dag_id": dag_id,
            "owner": f"team{i % 37}@example.com",
            "permissions": {
                "s3": [
                    {"bucket": "acme-raw", "prefix": f"team{i % 37}/{dag_id}/", "access": "read"}
                ],
                "secrets": [f"teams/team{i % 37}/token"],
                "sqs": [{"queue": f"q-{dag_id}"[:80], "access": "send"}],
            },
        }
        (folder / "dag_permissions" / f"{dag_id}.yaml").write_text(json.dumps(manifest))
    return folder


# Runs the command in a fresh process and reports the largest resident set of any process it
# waited for (the Python CLI, or the Node process jsii starts for aws-cdk-lib).
_WRAPPER = (
    "import resource,subprocess,sys;"
    "r=subprocess.run(sys.argv[1:],capture_output=True,text=True);"
    "sys.stderr.write(r.stdout+r.stderr);"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
    "sys.exit(r.returncode)"
)


def measure(args: list[str], expect: int = 0) -> dict[str, Any]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _WRAPPER, *args], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != expect:
        raise SystemExit(f"{' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    peak_kib = int(done.stdout.split()[-1])
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "output": done.stderr,  # the command's stdout and stderr
    }


INVALID = ROOT / "tests" / "fixtures" / "invalid"


def hostile_corpus(tmp: Path) -> None:
    """`validate` on every invalid fixture and a 20 MB manifest: each must exit 2; report the
    slowest and the largest."""
    cases = []
    for kind, target in (("manifests", "dag_permissions/bad.yaml"), ("config", None)):
        for fixture in sorted((INVALID / kind).glob("*.yaml")):
            cases.append((f"{kind}/{fixture.name}", fixture, target))
    big = tmp / "twenty_mb.yaml"
    big.write_text("dag_id: bad\nowner: x\ndescription: '" + "x" * (20 * 1024 * 1024) + "'\n")
    cases.append(("20 MB manifest", big, "dag_permissions/bad.yaml"))
    results = []
    for label, fixture, target in cases:
        project = tmp / "hostile"
        shutil.rmtree(project, ignore_errors=True)
        shutil.copytree(ROOT / "config", project / "config")
        shutil.copytree(ROOT / "dag_permissions", project / "dag_permissions")
        shutil.copy(fixture, project / (target or "config/foundation.yaml"))
        args = [str(FOUNDATION), "validate", "--project", str(project)]
        results.append((label, measure(args, expect=2)))
    slowest = max(results, key=lambda r: r[1]["seconds"])
    largest = max(results, key=lambda r: r[1]["peak_rss_mib"])
    print(f"hostile corpus: {len(results)} inputs, each exit 2")
    print(f"| slowest | {slowest[0]} | {slowest[1]['seconds']} s |")
    print(f"| largest | {largest[0]} | {largest[1]['peak_rss_mib']} MiB |")


def edit_manifest(path: Path, original: str, round_: int) -> None:
    """A DAG's grants changed: one secret more, a different one each round (the example's
    manifest is YAML with no permissions; a generated one is JSON, which is YAML too, with a
    secrets list)."""
    if not original.startswith("{"):
        path.write_text(f"{original}permissions:\n  secrets: [bench/{round_}]\n")
        return
    manifest = json.loads(original)
    manifest["permissions"]["secrets"].append(f"bench/{round_}")
    path.write_text(json.dumps(manifest))


def incremental(label: str, project: Path, out: Path, manifest: Path, rounds: int) -> str:
    """Cold synth, then one manifest edited, then nothing changed: each a fresh process, the
    three alternating round after round so a busy machine slows all of them alike."""
    synth = [str(FOUNDATION), "synth", "--project", str(project), "--out", str(out)]
    times: dict[str, list[float]] = {"cold": [], "edited": [], "unchanged": []}
    original = manifest.read_text()
    expect = {"cold": "Built all", "edited": "Rebuilt 4 stack(s)", "unchanged": "Nothing changed"}
    for round_ in range(rounds):
        for kind in times:
            if kind == "edited":
                edit_manifest(manifest, original, round_)
            run = measure([*synth, "--cold"] if kind == "cold" else synth)
            if expect[kind] not in run["output"]:
                raise SystemExit(f"{label}, {kind}: not what was measured:\n{run['output']}")
            times[kind].append(run["seconds"])
    cold, edited, unchanged = (statistics.median(times[k]) for k in times)
    return (
        f"| {label} | {rounds} | {cold:.2f} | {edited:.2f} | {edited / cold:.2f}x "
        f"| {unchanged:.2f} | {unchanged / cold:.2f}x |"
    )


def incremental_table(tmp: Path, dag_counts: list[int], rounds: int) -> None:
    print(
        "| project | rounds | cold s | one manifest edited s | edited / cold "
        "| nothing changed s | unchanged / cold |"
    )
    print("|---|---|---|---|---|---|---|", flush=True)
    example = example_project(tmp / "i-example", "ecs")
    manifest = example / "dag_permissions" / "housekeeping.yaml"
    print(incremental("ecs: example (7 DAGs)", example, tmp / "i-ex-out", manifest, rounds))
    for n in dag_counts:
        project = generated_project(tmp / f"i-{n}", n, "ecs")
        manifest = sorted((project / "dag_permissions").iterdir())[0]
        print(incremental(f"ecs: {n} DAGs", project, tmp / f"i-{n}-out", manifest, 1), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dags", type=int, nargs="*", default=[100, 1000])
    parser.add_argument("--executors", nargs="*", default=["ecs", "celery"])
    parser.add_argument("--rounds", type=int, default=3, help="incremental rounds, example")
    parser.add_argument("--incremental-dags", type=int, nargs="*", default=[1000])
    parser.add_argument("--only-incremental", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        incremental_table(Path(tmp), options.incremental_dags, options.rounds)
    if options.only_incremental:
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        projects = [
            (
                f"{executor}: example (7 DAGs)",
                example_project(Path(tmp) / f"x-{executor}", executor),
            )
            for executor in options.executors
        ] + [
            (
                f"{executor}: {n} DAGs",
                generated_project(Path(tmp) / f"p{n}-{executor}", n, executor),
            )
            for executor in options.executors
            for n in options.dags
        ]
        for index, (label, project) in enumerate(projects):
            out = Path(tmp) / f"out-{index}"
            validate = measure([str(FOUNDATION), "validate", "--project", str(project)])
            synth = measure(
                [str(FOUNDATION), "synth", "--project", str(project), "--out", str(out)]
            )
            stacks = json.loads((out / "manifest.json").read_text())["artifacts"]
            templates = [a for a in stacks.values() if a["type"] == "aws:cloudformation:stack"]
            biggest = max((out / a["properties"]["templateFile"]).stat().st_size for a in templates)
            rows.append((label, validate, synth, len(templates), biggest))
    print(
        "| project | validate s | validate MiB | synth s | synth MiB | stacks | largest template |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, validate, synth, stacks, biggest in rows:
        print(
            f"| {label} | {validate['seconds']} | {validate['peak_rss_mib']} | {synth['seconds']} "
            f"| {synth['peak_rss_mib']} | {stacks} | {biggest / 1024:.0f} KiB |"
        )
    with tempfile.TemporaryDirectory() as tmp:
        hostile_corpus(Path(tmp))


if __name__ == "__main__":
    main()
