"""`harness gpu-check` (`make gpu-check`): what a GPU owner needs to know before a full profile, in one table.

On a CUDA machine (the default setting): every study's smoke profile; the bf16 path; loss_epochs on all 60,000
Fashion-MNIST training images for one epoch (images/s and the run's time); loss_epochs's quick corrected block
with `--jobs 1` against `--jobs 4` on one GPU; evaluation of the same embeddings ranked on the GPU against the
CPU (equal within 1e-6); the peak GPU memory. Without CUDA, or with --small, the same checks run in a smaller
setting on the CPU (one smoke profile, 1,200 images, the smoke block, `--jobs 2`, CPU against CPU), so the suite
tests the check itself. The table is printed and written as JSON (--out). Nothing is written under results/.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

TOLERANCE = 1e-6  # evaluation on the GPU against the CPU: the largest metric difference allowed


@dataclasses.dataclass(frozen=True)
class Setting:
    """What each check runs: the full-size setting for a GPU, or the small one that the suite runs on a CPU."""

    smoke: tuple[str, ...] | None  # the studies whose smoke profile runs (None: every study)
    precision_study: str  # whose smoke profile runs again in bf16
    epoch_images_per_class: int | None  # loss_epochs one epoch: images per class (None: all 60,000)
    jobs_block: tuple[str, dict[str, Any]]  # (profile, where) of loss_epochs's runs timed with --jobs 1 and N
    jobs: int
    eval_images: int


GPU = Setting(None, "loss_epochs", None, ("quick", {"protocol": "corrected"}), 4, 4000)
SMALL = Setting(("calibration",), "calibration", 120, ("smoke", {"protocol": "corrected"}), 2, 600)


@dataclasses.dataclass
class Row:
    check: str
    setting: str
    result: str
    seconds: float
    ok: bool
    values: dict[str, Any] = dataclasses.field(default_factory=dict)


def timed(fn: Callable[[], tuple[str, bool, dict[str, Any]]], check: str, setting: str) -> Row:
    start = time.perf_counter()
    try:
        result, ok, values = fn()
    except HarnessError as exc:
        result, ok, values = f"error: {exc}", False, {}
    return Row(check, setting, result, time.perf_counter() - start, ok, values)


def run_block(study_name: str, profile: str, where: dict[str, Any], results: Path, data: Path | None,
              jobs: int = 1, overrides: tuple = ()) -> dict[str, int]:
    """The runs of a study's profile that match `where` (all, when empty), trained into `results`; how many
    finished and failed."""
    from harness import aggregate, execute, spec, store
    from harness import jobs as packing
    from harness import plan as planner

    study = spec.load(study_name, profile, overrides=overrides)
    runs = [r for r in study.runs if all(aggregate.matches(r.axes.get(k), v) for k, v in where.items())]
    study = dataclasses.replace(study, runs=runs)
    plan = planner.make(study, results)
    target = execute.Target(results, data)
    if jobs > 1:
        packing.run_packed(target, jobs, study, plan)
    else:
        execute.run_plan(target, study, plan, execute.launch_accelerator(), lambda line: None)
    scan = store.scan(results, study.name, profile)
    return {"runs": len(runs), "ok": len(scan.ok), "failed": len(scan.failed)}


def smoke(study: str, scratch: Path, sets: tuple[str, ...] = ()) -> tuple[str, bool, dict[str, Any]]:
    """A study's smoke profile (with --set `sets`, e.g. the bf16 path) in its own results folder."""
    from harness import overrides

    counts = run_block(study, "smoke", {}, scratch / ("smoke" + "".join(f"_{s}" for s in sets)), scratch / "data",
                       overrides=overrides.parse(list(sets)))
    # A failed run can be the science (cub_cars's batch of one cannot train); a missing one is a fault.
    ok = counts["ok"] + counts["failed"] == counts["runs"] and counts["ok"] > 0
    extra = "".join(f" with {s}" for s in sets)
    return f"{counts['ok']} ok, {counts['failed']} failed of {counts['runs']}{extra}", ok, counts


def one_epoch(per_class: int | None) -> tuple[str, bool, dict[str, Any]]:
    """loss_epochs's contrastive run (seed 0) for one epoch on Fashion-MNIST: all of it, or per_class images."""
    from harness import identity, spec, train

    run = next(r for r in spec.load("loss_epochs", "quick", components=False).runs
               if r.axes.get("loss") == "contrastive" and r.axes.get("protocol") == "corrected" and r.seed == 0)
    cfg = run.config
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"train_per_class": per_class}),
                                 "train": cfg.train.model_copy(update={"epochs": 1, "eval_epochs": [1]})})
    run = dataclasses.replace(run, config=cfg, run_id=identity.run_id(cfg.model_dump(mode="json")))
    record = train.execute(run, progress=False)
    speed = record.timing.train_images_per_s or 0.0
    values = {"train_images": record.data.train_size, "images_per_s": speed, "run_s": record.timing.wall_s,
              "train_s": record.timing.train_s, "eval_s": record.timing.eval_s}
    return (f"{record.data.train_size} images: {speed:,.0f} images/s, the run {record.timing.wall_s:.1f} s "
            f"(evaluation {record.timing.eval_s:.1f} s)", record.status == "ok", values)


def packed(setting: Setting, scratch: Path) -> tuple[str, bool, dict[str, Any]]:
    """The same block with one job and with `setting.jobs`: wall seconds each and the ratio."""
    profile, where = setting.jobs_block
    seconds = {}
    for jobs in (1, setting.jobs):
        start = time.perf_counter()
        counts = run_block("loss_epochs", profile, where, scratch / f"jobs{jobs}", scratch / "data", jobs=jobs)
        seconds[jobs] = time.perf_counter() - start
        if counts["ok"] != counts["runs"]:
            return f"--jobs {jobs}: {counts['ok']} of {counts['runs']} finished", False, counts
    ratio = seconds[1] / seconds[setting.jobs]
    return (f"{counts['runs']} runs: --jobs 1 {seconds[1]:.1f} s, --jobs {setting.jobs} {seconds[setting.jobs]:.1f} s "
            f"({ratio:.2f}x)", True, {"runs": counts["runs"], "seconds": seconds, "speedup": ratio})


def evaluation(images: int) -> tuple[str, bool, dict[str, Any]]:
    """One set of embeddings (an untrained thesis convnet on Fashion-MNIST test images) scored with the ranking
    on the GPU and on the CPU; the largest metric difference."""
    import numpy as np
    import torch

    from harness import data, evaluate, models

    test = data.load("fashion_mnist").test
    torch.manual_seed(0)
    model = models.ThesisConvNet((1, 28, 28), embedding_dim=128).eval()
    with torch.no_grad():
        x = model(test.images[:images].float()).numpy()
    labels = test.labels[:images].numpy()
    metrics = ["precision_at_1", "map_at_r", "r_precision", "knn_accuracy"]
    on_cpu = evaluate.evaluate(x, labels, metrics=metrics)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    on_device = evaluate.evaluate(torch.from_numpy(x).to(device), labels, metrics=metrics)
    worst = max(abs(on_cpu[k] - on_device[k]) for k in on_cpu)
    where = "the GPU" if device == "cuda" else "the CPU again (no CUDA here)"
    return (f"{len(labels)} embeddings ranked on {where} against the CPU: largest metric difference {worst:.1e}",
            bool(np.isfinite(worst) and worst <= TOLERANCE), {"device": device, "largest_difference": worst})


def memory() -> tuple[str, bool, dict[str, Any]]:
    import torch

    if torch.cuda.is_available():
        peak = torch.cuda.max_memory_allocated() / 2**20
        return f"{peak:,.0f} MiB of GPU memory at most (this process)", True, {"gpu_peak_mib": peak}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return f"no GPU; {peak:,.0f} MiB resident at most (this process)", True, {"rss_peak_mib": peak}


def device_facts() -> dict[str, Any]:
    import torch

    facts = {"torch": torch.__version__, "cuda": torch.cuda.is_available(), "cuda_build": torch.version.cuda}
    if torch.cuda.is_available():
        facts["device"] = torch.cuda.get_device_name(0)
        facts["bf16"] = torch.cuda.is_bf16_supported()
    return facts


def check(setting: Setting, scratch: Path) -> tuple[dict[str, Any], list[Row]]:
    from harness import spec

    rows = []
    for study in setting.smoke or tuple(spec.list_studies()):
        rows.append(timed(lambda s=study: smoke(s, scratch), "smoke profile", study))
    rows.append(timed(lambda: smoke(setting.precision_study, scratch, ("train.precision=bf16",)), "bf16",
                      f"{setting.precision_study} smoke"))
    per_class = setting.epoch_images_per_class
    rows.append(timed(lambda: one_epoch(per_class), "one epoch, loss_epochs",
                      "all 60,000 Fashion-MNIST images" if per_class is None else f"{per_class} images per class"))
    profile, where = setting.jobs_block
    rows.append(timed(lambda: packed(setting, scratch), "--jobs on one device",
                      f"loss_epochs {profile}, " + ", ".join(f"{k} = {v}" for k, v in where.items())))
    rows.append(timed(lambda: evaluation(setting.eval_images), "evaluation, device against CPU",
                      f"{setting.eval_images} images"))
    rows.append(timed(memory, "peak memory", "this process"))
    return device_facts(), rows


def table(facts: dict[str, Any], rows: list[Row]) -> str:
    head = ", ".join(f"{k} {v}" for k, v in facts.items())
    lines = [f"gpu-check ({head})", f"{'check':<32} {'setting':<36} {'s':>7}  result"]
    for row in rows:
        mark = "" if row.ok else "FAILED: "
        lines.append(f"{row.check:<32} {row.setting:<36} {row.seconds:7.1f}  {mark}{row.result}")
    return "\n".join(lines)


def add_parser(sub: Any) -> None:
    cmd = sub.add_parser("gpu-check", help="the checks to run before a full profile on a GPU (smoke profiles on "
                                           "CUDA, bf16, one MNIST-sized epoch, --jobs, GPU evaluation, memory)")
    cmd.add_argument("--small", action="store_true", help="the small CPU setting (the default without CUDA)")
    cmd.add_argument("--out", type=Path, default=Path("gpu-check.json"), help="the JSON file (default: "
                                                                                "gpu-check.json)")
    cmd.set_defaults(func=command)


def command(args: Any) -> int:
    import torch

    setting = SMALL if args.small or not torch.cuda.is_available() else GPU
    if args.out.exists() and args.out.is_dir():
        raise HarnessError(f"--out {args.out}: a folder; give a file name for the JSON")
    with tempfile.TemporaryDirectory(prefix="gpu-check.") as scratch:
        facts, rows = check(setting, Path(scratch))
    text = table(facts, rows)
    print(text)
    from harness import files

    files.atomic_write(args.out, json.dumps({"device": facts, "setting": "small" if setting is SMALL else "gpu",
                                             "rows": [dataclasses.asdict(r) for r in rows]}, indent=1) + "\n")
    print(f"written: {args.out}", file=sys.stderr)
    return 0 if all(r.ok for r in rows) else 1
