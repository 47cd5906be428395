"""Which recorded run the demo serves, its saved weights (checked against the record's sha256), and rebuilding them."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import spec, store
from harness.errors import HarnessError
from harness.files import file_hash


@dataclass(frozen=True)
class Chosen:
    """A recorded run the demo can serve: its study, run (matrix cell), record and where its weights belong."""

    study: spec.Study
    run: spec.Run
    record: store.RunRecord
    weights: Path
    results: Path


def rebuild_command(chosen: Chosen) -> str:
    """The one command that retrains the run and saves its weights (named whenever they are missing)."""
    parts = ["harness demo", chosen.study.name, "--profile", chosen.study.profile, "--run", chosen.run.run_id]
    if Path(chosen.results) != store.RESULTS_DIR:
        parts += ["--results", str(chosen.results)]
    return " ".join(parts) + " --rebuild"


def demo_studies(profile: str) -> list[str]:
    """The studies whose profile names a demo run (an image embedding to serve)."""
    return [name for name in spec.list_studies() if spec.load(name, profile, components=False).demo_run]


def choose(study_name: str, profile: str, results: Path, run_id: str | None = None) -> Chosen:
    """The run to serve: `run_id`, or the profile's `demo:` run; HarnessError (one line) when there is none."""
    study = spec.load(study_name, profile, components=False)
    runs = {r.run_id: r for r in study.runs}
    if run_id is None:
        if study.demo_run is None:
            others = ", ".join(demo_studies(profile)) or "none"
            raise HarnessError(f"{study.name}/{profile} names no demo run (profiles.{profile}.demo in "
                               f"{study.path.name}); give one with --run RUN_ID, or try a study that does: {others}")
        run_id = study.demo_run
    if run_id not in runs:
        listing = ", ".join(list(runs)[:6])
        raise HarnessError(f"--run {run_id}: not a run of {study.name}/{profile} (its matrix has {len(runs)} runs, "
                           f"e.g. {listing}; `harness status {study.name} --profile {profile} -v` lists them)")
    path = store.record_path(results, study.name, profile, run_id)
    if not path.exists():
        raise HarnessError(f"run {run_id} of {study.name}/{profile} is not recorded in {results}; run "
                           f"`harness run {study.name} --profile {profile}` first (or `make reproduce`)")
    record = store.read(path)
    if record.status != "ok":
        raise HarnessError(f"run {run_id} failed ({record.error.type}: {record.error.message}); choose a finished "
                           "run with --run")
    if not record.config["train"]["epochs"]:
        raise HarnessError(f"run {run_id} is a baseline ({record.config['model']['name']}, never trained): it has "
                           "no weights to serve; choose a trained run with --run")
    return Chosen(study, runs[run_id], record, store.weights_path(results, study.name, profile, run_id), results)


@dataclass(frozen=True)
class Weights:
    """A weights file the demo may serve, and how it relates to the record (said on the page)."""

    path: Path
    sha256: str
    recorded: bool  # the file its record names (sha256); else a rebuild, described by `provenance`
    provenance: str


def _metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            found = json.loads((handle.metadata() or {}).get("harness", "{}"))
    except Exception:  # noqa: BLE001 (any unreadable header means the same: not a weights file of ours)
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def check_weights(chosen: Chosen) -> Weights:
    """The weights to serve: the file the record names (sha256), or a rebuild of this run (`--rebuild`, which
    says in the file how its metrics compare with the record's). Otherwise one line naming the rebuild command."""
    record, path = chosen.record, chosen.weights
    if not path.is_file():
        why = f"{path} is missing" if record.weights is not None else "its record names no saved weights"
        raise HarnessError(f"run {record.run_id} has no weights to serve ({why}); rebuild them (retrains the run, "
                           f"about {record.timing.wall_s:.0f} s when recorded) with: {rebuild_command(chosen)}")
    actual = file_hash(path)
    if record.weights is not None and actual == record.weights.sha256:
        return Weights(path, actual, True, f"saved by the run itself (sha256 {actual[:12]}..., as its record says)")
    meta = _metadata(path)
    if meta.get("run_id") != record.run_id or meta.get("rebuilt_for") != record.digest:
        named = f"not the {record.weights.sha256[:12]}... its record names" if record.weights else \
            "not a rebuild of this run's record"
        raise HarnessError(f"{path}: sha256 {actual[:12]}... is {named} (edited, or saved for another record); "
                           f"delete it and run: {rebuild_command(chosen)}")
    worst = float(meta.get("largest_difference", "inf"))
    agreement = "every metric equal to the record's" if worst == 0 else \
        f"metrics within {worst:.1e} of the record's (not bit for bit: {meta.get('why', 'another machine')})"
    return Weights(path, actual, False, f"rebuilt by `harness demo --rebuild` on {meta.get('host', '?')} at "
                                        f"{meta.get('rebuilt_at', '?')}, {agreement}")


def rebuild(chosen: Chosen, data_root: Path | None = None, progress: bool = False,
            command: list[str] | None = None, say: Any = print) -> Weights:
    """Retrain the run and save its final weights beside its record, which is left as it is.

    The file's header says what it is: the run, the digest of the record it was rebuilt for, when and where, and
    the largest difference between the rebuild's metrics and the record's (0 when training reproduced the run
    bit for bit, as it does on the CPU type that recorded it; another CPU's floating point differs slightly).
    """
    import platform
    from datetime import datetime, timezone

    from safetensors.torch import load_file, save_file

    from harness import execute

    run, record = chosen.run, chosen.record
    if run.parent:
        raise HarnessError(f"run {run.run_id} continues run {run.parent} (a chain); the demo rebuilds fresh runs only: "
                           "choose another run with --run")
    say(f"rebuilding the weights of {chosen.study.name}/{chosen.study.profile} run {run.run_id} "
        f"({' '.join(f'{k}={v}' for k, v in run.axes.items())} seed={run.seed}); the record took "
        f"{record.timing.wall_s:.0f} s")
    with tempfile.TemporaryDirectory(prefix="harness-demo-") as scratch:
        trained = Path(scratch) / chosen.weights.name
        rerun = execute.rerun(run, Path(scratch), data_root=data_root, progress=progress, command=command,
                              save_weights=trained)
        if rerun.status != "ok":
            raise HarnessError(f"the rerun of {run.run_id} failed ({rerun.error.type}: {rerun.error.message})")
        worst, values = execute.largest_difference(record.metrics, rerun.metrics)
        same_cpu = rerun.provenance.cpu == record.provenance.cpu and rerun.provenance.torch_threads == \
            record.provenance.torch_threads
        why = "" if worst == 0 else (f"recorded on a CPU of the same name ({record.provenance.cpu}) whose "
                                     "instruction set or code version may differ" if same_cpu else
                                     f"recorded on {record.provenance.cpu}")
        metadata = {"run_id": run.run_id, "rebuilt_for": record.digest or "",
                    "rebuilt_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "host": platform.node(), "largest_difference": repr(worst), "why": why,
                    "metrics": json.dumps(rerun.metrics)}
        partial = chosen.weights.with_name(f".{chosen.weights.name}.tmp")  # renamed into place: never half a file
        if record.weights is not None and rerun.weights.sha256 == record.weights.sha256:
            shutil.copyfile(trained, partial)  # the very file the record names: restored as it was
        else:
            header = {"harness": json.dumps(metadata, sort_keys=True)}  # one key: see train.write_weights
            save_file(load_file(str(trained)), str(partial), metadata=header)
        partial.chmod(0o644)  # as records are written: readable by a group sharing the results folder
        partial.replace(chosen.weights)
    if worst == 0:
        say(f"the rerun's {values} metric values equal the record's exactly")
    else:
        say(f"warning: the rerun's metrics differ from the record's by up to {worst:.2e} ({why}); the page says so")
    say(f"saved {chosen.weights} ({chosen.weights.stat().st_size / 1e6:.1f} MB); the record is unchanged")
    return check_weights(chosen)
