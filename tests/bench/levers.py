"""What each speed lever would buy, measured on every study's quick run (issue 28's levers, side by side).

For the first trained seed-0 run of each study's quick profile (the run tests/bench/stages.py profiles), a real
`harness.train.Trainer` is built as `harness run` builds it, and two things are timed: training steps (forward,
loss and miner, backward, optimizer: `Trainer.step` on the run's own batches) and one evaluation embedding pass
(`Trainer.embed`) over the run's first test items. Each lever is a config override, so the run is the study's own:

    as declared      the study file as it stands
    channels_last    train.channels_last=true (the model and its batches in NHWC)
    bf16             train.precision=bf16 (autocast: convolutions and matrix products in bfloat16)
    fused Adam       torch's fused Adam kernel (not a study option: set on the optimizer's groups here)

Every lever is also measured as an AVX2 host would run it: the same process restarted with oneDNN and ATen
limited to AVX2 (ONEDNN_MAX_CPU_ISA=AVX2, ATEN_CPU_CAPABILITY=avx2), this host's own kernels standing in for
another machine's. A lever that speeds this host up and slows an AVX2 laptop down would make the quick profile,
which reviewers run on laptops, slower where it matters.

    python -m tests.bench.levers [study ...]      prints the table (every study by default)
    make bench                                    runs it as tests/bench/test_levers.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

LEVERS: dict[str, tuple[str, ...]] = {
    "as declared": (),
    "channels_last": ("train.channels_last=true",),
    "bf16": ("train.precision=bf16",),
    "fused Adam": (),
}
# What an AVX2 host dispatches: oneDNN (convolutions, bf16) and ATen's own vectorised kernels.
AVX2 = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


def first_run(study: str, sets: tuple[str, ...]) -> Any:
    """The study's first trained seed-0 quick run, with the lever's overrides applied as `--set` applies them."""
    from harness import overrides, spec

    runs = spec.load(study, "quick", overrides=overrides.parse(sets)).runs
    return next(r for r in runs if r.seed == 0 and "baseline" not in r.axes and r.parent is None)


def measure(study: str, lever: str, steps: int, items: int) -> dict[str, float]:
    """Milliseconds per training step and seconds for embedding `items` test items, for one lever."""
    import torch

    from harness import train
    from harness.data import load

    run = first_run(study, LEVERS[lever])
    trainer = train.Trainer(run, train.new_accelerator(), load(run.config.data.dataset))
    if lever == "fused Adam":
        inner = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # accelerate wraps it
        if not isinstance(inner, torch.optim.Adam):  # the lever is Adam's: another optimizer has no number
            return {"step_ms": float("nan"), "embed_s": float("nan")}
        for group in inner.param_groups:
            group["fused"], group["foreach"] = True, False
    batches = iter(trainer.pipeline.batches(1))
    warm = 3
    for _ in range(warm):
        trainer.step(*next(batches))
    done, start = 0, time.perf_counter()
    for batch, labels in batches:
        trainer.step(batch, labels)
        done += 1
        if done == steps:
            break
    step_ms = 1000 * (time.perf_counter() - start) / max(done, 1)
    test = trainer.parts.test
    part = test.subset(torch.arange(min(items, len(test))))
    trainer.embed(part)  # first pass: oneDNN picks and caches its kernels for these shapes
    start = time.perf_counter()
    trainer.embed(part)
    return {"step_ms": step_ms, "embed_s": time.perf_counter() - start}


def measure_all(studies: list[str], steps: int = 30, items: int = 2048) -> dict[str, dict[str, dict[str, float]]]:
    """{study: {lever: timings}} in this process (whatever instruction set it dispatches)."""
    return {study: {lever: measure(study, lever, steps, items) for lever in LEVERS} for study in studies}


def measure_avx2(studies: list[str], steps: int, items: int) -> dict[str, dict[str, dict[str, float]]]:
    """The same measurements in a fresh process limited to AVX2 (the variables are read when torch loads)."""
    code = (f"import json, sys; from tests.bench import levers; "
            f"print(json.dumps(levers.measure_all({studies!r}, {steps}, {items})))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **AVX2}, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def ratios(rows: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, dict[str, float]]]:
    """Each lever's speed-up over the study as declared, measured in the same process (> 1: faster)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for study, levers in rows.items():
        base = levers["as declared"]
        out[study] = {lever: {"step": base["step_ms"] / t["step_ms"], "embed": base["embed_s"] / t["embed_s"]}
                      for lever, t in levers.items() if lever != "as declared"}
    return out


def table(here: dict[str, Any], avx2: dict[str, Any]) -> str:
    """One line per study: the as-declared timings, then each lever's speed-up here and on AVX2."""
    columns = [lever for lever in LEVERS if lever != "as declared"]
    head = (f"{'study':<13}{'step ms':>9}{'embed s':>9}  "
            + "  ".join(f"{c + ' (here | AVX2)':>30}" for c in columns))
    lines = [head, " " * 31 + "  ".join(f"{'step':>14}{'embed':>16}" for _ in columns)]
    here_r, avx2_r = ratios(here), ratios(avx2)
    for study in here:
        base = here[study]["as declared"]
        cells = []
        for lever in columns:
            a, b = here_r[study][lever], avx2_r[study][lever]
            cells.append(f"{a['step']:6.2f}x|{b['step']:5.2f}x" + " " * 2 + f"{a['embed']:6.2f}x|{b['embed']:5.2f}x")
        lines.append(f"{study:<13}{base['step_ms']:9.1f}{base['embed_s']:9.2f}  " + "  ".join(f"{c:>30}" for c in cells))
    return "\n".join(lines)


if __name__ == "__main__":
    from harness import spec

    chosen = sys.argv[1:] or spec.list_studies()
    here = measure_all(chosen)
    print(table(here, measure_avx2(chosen, 30, 2048)))
