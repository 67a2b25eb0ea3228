"""Speed and memory of validate and synth, on the shipped example and on generated projects,
and of incremental synth (one manifest edited, nothing changed) against a cold one.

    .venv/bin/python benchmarks/run.py [--dags 100 1000] [--executors ecs celery]
        [--rounds 5] [--incremental-dags 1000]
    .venv/bin/python benchmarks/run.py --ratios-only   # issue 14's ratios alone

Each measurement runs in a fresh process (so imports and Node start-up count, as they do for a
user) and reports wall time and peak resident memory of that process and its children. The
ratios (issue 14's targets) compare commands measured side by side in one run, alternating
within each round, and divide medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

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


def measure(
    args: list[str], expect: int = 0, cwd: Path | None = None, env: dict[str, str] | None = None
) -> dict[str, Any]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _WRAPPER, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
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


CDK = ROOT / "node_modules" / ".bin" / "cdk"
CACHE_ENV = "FOUNDATION_CACHE_DIR"  # foundation/checks/cache.py


def cdk_synth(project: Path, out: Path) -> list[str]:
    """The CDK CLI on the same app (app.py, as cdk.json runs it), which runs no checks."""
    app = f"{sys.executable} {ROOT / 'app.py'}"
    flags = ["--no-path-metadata", "--no-version-reporting", "--no-asset-metadata"]
    return [str(CDK), "synth", "--quiet", "--app", app, *flags, "--output", str(out)]


def edit_manifest(path: Path, original: str, round_: int) -> None:
    """A DAG's grants changed: one secret more, a different one each round (written back as
    JSON, which is YAML too)."""
    manifest = yaml.safe_load(original)
    manifest.setdefault("permissions", {}).setdefault("secrets", []).append(f"bench/{round_}")
    path.write_text(json.dumps(manifest))


EXPECT = {
    "cold": "Built all",
    "edited": "Rebuilt 1 stack(s)",
    "unchanged": "Nothing changed",
    "daemon": "Rebuilt 1 stack(s)",
}
DAEMON = "FOUNDATION_DAEMON"  # foundation/daemon.py: on for "daemon", off for the others


def synth_kinds(
    project: Path, out: Path, manifest: Path, round_: int, cache: Path, env: dict[str, str]
) -> dict[str, Any]:
    """One round as a user meets it: a cold synth (--cold, an empty findings cache), then one
    manifest edited, then nothing changed, each in a fresh process and with the cache the cold
    synth filled, without a daemon; then a second edit through the project's daemon, warm (as
    after a first synth has started it and the user has edited for a few seconds)."""
    synth = [str(FOUNDATION), "synth", "--project", str(project), "--out", str(out)]
    original = manifest.read_text()
    shutil.rmtree(cache, ignore_errors=True)
    runtime = Path(tempfile.mkdtemp(prefix="fd-", dir="/tmp"))  # the daemons' folder: short
    env = {**env, CACHE_ENV: str(cache), "XDG_RUNTIME_DIR": str(runtime), DAEMON: "off"}
    seconds = {}
    try:
        for kind in EXPECT:
            if kind == "edited":
                edit_manifest(manifest, original, round_)
            if kind == "daemon":
                for _ in range(2):  # the first starts it, the second waits until it is warm
                    measure(synth, env={**env, DAEMON: "on"})
                edit_manifest(manifest, original, 500 + round_)
            args = [*synth, "--cold"] if kind == "cold" else synth
            run = measure(args, env={**env, DAEMON: "on" if kind == "daemon" else "off"})
            if EXPECT[kind] not in run["output"]:
                raise SystemExit(f"{project}, {kind}: not what was measured:\n{run['output']}")
            seconds[kind] = run["seconds"]
    finally:
        measure([str(FOUNDATION), "daemon", "stop"], env=env)
        shutil.rmtree(runtime, ignore_errors=True)
    return seconds


WATCHING = "Watching config/"  # what `synth --watch` prints once a synth is done


def watched_edits(
    project: Path, out: Path, manifest: Path, rounds: int, env: dict[str, str]
) -> list[float]:
    """`foundation synth --watch`: seconds from saving an edited manifest to the assembly
    written (its next "Watching" line), each edit a different grant (linted, not cached)."""
    args = [str(FOUNDATION), "synth", "--watch", "--project", str(project), "--out", str(out)]
    watcher = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **env},
    )
    assert watcher.stdout

    def until_watching() -> str:
        lines = []
        while not (line := watcher.stdout.readline()).startswith(WATCHING):
            if not line:
                raise SystemExit(f"synth --watch ended:\n{''.join(lines)}")
            lines.append(line)
        return "".join(lines)

    original = manifest.read_text()
    seconds = []
    try:
        until_watching()
        for round_ in range(rounds):
            edit_manifest(manifest, original, 1000 + round_)
            start = time.perf_counter()
            output = until_watching()
            seconds.append(time.perf_counter() - start)
            if EXPECT["edited"] not in output or "1 of" not in output:
                raise SystemExit(f"{project}, watched edit: not what was measured:\n{output}")
    finally:
        watcher.terminate()
        watcher.wait()
        manifest.write_text(original)
    return seconds


def example_ratios(tmp: Path, rounds: int) -> None:
    """`foundation synth` of the example, cold, one manifest edited and nothing changed, against
    `cdk synth` of the same app: every command once per round, in turn."""
    project = example_project(tmp / "ratios", "ecs")
    manifest = project / "dag_permissions" / "housekeeping.yaml"
    env = {"PYTHONPATH": str(ROOT)}  # app.py imports the toolkit from this checkout
    times: dict[str, list[float]] = {k: [] for k in ("cdk", *EXPECT)}
    for round_ in range(rounds):
        times["cdk"].append(
            measure(cdk_synth(project, tmp / "cdk.out"), cwd=project, env=env)["seconds"]
        )
        for kind, seconds in synth_kinds(
            project, tmp / "o", manifest, round_, tmp / "cache", env
        ).items():
            times[kind].append(seconds)
    cache = {CACHE_ENV: str(tmp / "cache")}
    times["watched"] = watched_edits(project, tmp / "o", manifest, rounds, {**env, **cache})
    for what, seconds in times.items():
        print(f"{what}: {' '.join(f'{s:.2f}' for s in seconds)} s")
    median = {k: statistics.median(v) for k, v in times.items()}
    rows = {
        "example, cold (no cache), all checks / `cdk synth` of the same app": ("cold", "cdk"),
        "example, one manifest edited / cold, a fresh `synth` without a daemon": (
            "edited",
            "cold",
        ),
        "example, one manifest edited / cold, a fresh `synth` through the warm daemon": (
            "daemon",
            "cold",
        ),
        "example, one manifest edited under `synth --watch` (save to written) / cold": (
            "watched",
            "cold",
        ),
        "example, nothing changed / cold": ("unchanged", "cold"),
    }
    print(f"| what ({rounds} rounds, medians) | ratio |")
    print("|---|---|")
    for what, (measured, against) in rows.items():
        print(f"| {what} | {median[measured] / median[against]:.2f}x |", flush=True)


def generated_incremental(tmp: Path, dag_counts: list[int], rounds: int) -> None:
    print(
        "| project | cold s | one manifest edited s | edited / cold | edited, through the warm "
        "daemon s | edited under --watch s (median of rounds) | nothing changed s |"
    )
    print("|---|---|---|---|---|---|---|", flush=True)
    for n in dag_counts:
        project = generated_project(tmp / f"i-{n}", n, "ecs")
        manifest = sorted((project / "dag_permissions").iterdir())[0]
        t = synth_kinds(project, tmp / f"i-{n}-out", manifest, 0, tmp / f"cache-{n}", {})
        cache = {CACHE_ENV: str(tmp / f"cache-{n}")}
        watched = watched_edits(project, tmp / f"i-{n}-out", manifest, rounds, cache)
        print(
            f"| ecs: {n} DAGs | {t['cold']:.1f} | {t['edited']:.1f} "
            f"| {t['edited'] / t['cold']:.2f}x | {t['daemon']:.1f} "
            f"| {statistics.median(watched):.1f} "
            f"({' '.join(f'{s:.1f}' for s in watched)}) | {t['unchanged']:.1f} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dags", type=int, nargs="*", default=[100, 1000])
    parser.add_argument("--executors", nargs="*", default=["ecs", "celery"])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the example's ratios")
    parser.add_argument("--incremental-dags", type=int, nargs="*", default=[1000])
    parser.add_argument("--ratios-only", action="store_true", help="only the example's ratios")
    options = parser.parse_args()
    os.environ[DAEMON] = "off"  # every command measures itself; synth_kinds asks for a daemon
    with tempfile.TemporaryDirectory() as tmp:
        example_ratios(Path(tmp), options.rounds)
    if options.ratios_only:
        return
    with tempfile.TemporaryDirectory() as tmp:
        generated_incremental(Path(tmp), options.incremental_dags, options.rounds)
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
