"""Scale rehearsal for the image studies (`python -m harness.rehearsal`): a CUB-sized dataset in CUB's real layout,
measured through the project's own image pipeline and ResNet-50.

It generates 11,788 JPEGs (200 classes; 5,864 training images in classes 1-100 and 5,924 test images in
101-200, as CUB-200-2011 has; about 500 x 375 px, a sixth of them portrait) into a scratch folder, then
measures on this machine:
  1. decode + augmentation throughput of one DataLoader worker (one process, one thread): PIL decode alone,
     torchvision.io.decode_jpeg alone, the training view (harness.data.folders.train_transform) and the test
     view, and the training view from a pre-decoded cache (the images resized to 256 px on the short side);
  2. steps of the cub_cars full protocol (ResNet-50, 224 px, a backbone-training epoch, its pipeline with
     $HARNESS_WORKERS loader workers), each split into data wait and compute, for as many steps as fit in
     --train-budget-s (a CPU does a few images a second, so the batch is --batch, not the protocol's 100);
  3. the evaluation pass on the 5,924 test images (or --eval-images of them): embedding time, images/s, and the
     process's peak resident memory during it, then the metrics' time on those embeddings.
ImageNet weights are not needed (pretrained: false; the arithmetic is the same). The figures are printed and
written as JSON (--out); the scratch folder is deleted unless --keep. See README, "Scale rehearsal".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

CLASSES = 200
# Images per class giving CUB-200-2011's split sizes: 5,864 training (classes 1-100), 5,924 test (101-200).
TRAIN_COUNTS = [59] * 64 + [58] * 36
TEST_COUNTS = [60] * 24 + [59] * 76
PORTRAIT_SHARE = 1 / 6
CACHE_SHORT_SIDE = 256  # a pre-decoded cache at the training size: what RandomResizedCrop(224) would read


def _image(rng: np.random.Generator) -> Any:
    """A photo-like JPEG source: smooth colour fields plus fine texture (JPEG sizes near real photos'), ~500 x 375."""
    from PIL import Image

    if rng.random() < PORTRAIT_SHARE:
        size = (int(rng.integers(300, 450)), 500)
    else:
        size = (500, int(rng.integers(300, 450)))
    coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize(size, Image.BICUBIC), dtype=np.int16)
    texture = rng.normal(0, 18, (size[1], size[0], 1))
    return Image.fromarray(np.clip(base + texture, 0, 255).astype(np.uint8))


def _write_class(args: tuple[Path, int, int]) -> list[str]:
    folder, class_id, count = args
    rng = np.random.default_rng(class_id)
    name = f"{class_id:03d}.Rehearsal_{class_id}"
    (folder / "images" / name).mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(count):
        rel = f"{name}/Rehearsal_{class_id}_{k:04d}.jpg"
        _image(rng).save(folder / "images" / rel, format="JPEG", quality=85)
        paths.append(rel)
    return paths


def generate(root: Path, processes: int) -> Path:
    """CUB_200_2011/{images/, images.txt, image_class_labels.txt, classes.txt} under root."""
    from multiprocessing import get_context

    from harness.data import folders

    folder = root / folders.CUB_FOLDER
    counts = TRAIN_COUNTS + TEST_COUNTS
    with get_context("spawn").Pool(processes) as pool:
        per_class = pool.map(_write_class, [(folder, c + 1, counts[c]) for c in range(CLASSES)])
    images, labels, image_id = [], [], 0
    for class_id, paths in enumerate(per_class, 1):
        for rel in paths:
            image_id += 1
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {class_id}")
    (folder / "images.txt").write_text("\n".join(images) + "\n")
    (folder / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (folder / "classes.txt").write_text("\n".join(f"{c} {c:03d}.Rehearsal_{c}" for c in range(1, 201)) + "\n")
    return folder


def _rate(items: list[Any], work: Any) -> float:
    tick = time.perf_counter()
    for item in items:
        work(item)
    return len(items) / (time.perf_counter() - tick)


def decode_rates(paths: list[Path], scratch: Path) -> dict[str, float]:
    """Images per second of one process on one thread, per stage of the image pipeline."""
    import torch
    import torchvision.io
    from PIL import Image

    from harness.data import folders

    torch.set_num_threads(1)
    train_view, test_view = folders.train_transform(224), folders.test_transform(224, resize=256)

    def pil(path: Path) -> Any:
        with Image.open(path) as image:
            return image.convert("RGB")

    cache = scratch / "cache"
    cache.mkdir(exist_ok=True)
    cached = []
    for path in paths:
        image = pil(path)
        scale = CACHE_SHORT_SIDE / min(image.size)
        small = image.resize((round(image.size[0] * scale), round(image.size[1] * scale)), Image.BILINEAR)
        cached.append(cache / path.name)
        small.save(cached[-1], format="JPEG", quality=90)
    pil(paths[0]), train_view(pil(paths[0]))  # warm-up
    return {
        "pil_decode": _rate(paths, pil),
        "torchvision_decode_jpeg": _rate(paths, lambda p: torchvision.io.decode_jpeg(torchvision.io.read_file(str(p)))),
        "train_view": _rate(paths, lambda p: train_view(pil(p))),
        "test_view": _rate(paths, lambda p: test_view(pil(p))),
        "train_view_from_256px_cache": _rate(cached, lambda p: train_view(pil(p))),
    }


class PeakRss:
    """Highest resident memory of this process while the block runs (sampled every 50 ms), in MB."""

    def __enter__(self) -> PeakRss:
        self.peak_mb, self._stop = self._now(), threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _now() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            self.peak_mb = max(self.peak_mb, self._now())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._now())


def trainer_for(root: Path, batch: int, workers: int) -> Any:
    """A Trainer of the cub_cars full protocol's first CUB run on the generated data (no ImageNet weights)."""
    import torch

    from harness import data as datasets
    from harness import overrides, spec, train

    precision = "bf16" if torch.cuda.is_available() else "fp32"  # CPU autocast to bf16 is slow on most CPUs
    study = spec.load("cub_cars", "full", overrides=overrides.parse(
        ["model.pretrained=false", f"train.batch_size={batch}", f"train.precision={precision}"]))
    run = next(r for r in study.runs if r.config.data.dataset == "cub200" and r.config.train.epochs
               and r.config.loss["name"] == "contrastive")
    dataset = datasets.load("cub200", root)
    return train.Trainer(run, train.new_accelerator(), dataset, workers=workers)


def train_steps(trainer: Any, budget_s: float) -> dict[str, Any]:
    """Steps of a backbone-training epoch until the budget is spent: data wait and compute per step."""
    import torch

    epoch = trainer.cfg.train.warmup_epochs + 1
    trainer.warm_up(epoch)
    waits, computes = [], []
    start = time.perf_counter()
    batches = trainer.pipeline.batches(epoch)
    while time.perf_counter() - start < budget_s:
        tick = time.perf_counter()
        batch, labels = next(batches)
        waits.append(time.perf_counter() - tick)
        tick = time.perf_counter()
        trainer.step(batch, labels)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        computes.append(time.perf_counter() - tick)
    del batches
    steady = slice(1, None) if len(waits) > 2 else slice(None)  # the first batch also starts the loader
    batch = trainer.cfg.train.batch_size
    return {"steps": len(waits), "batch": batch, "first_wait_s": waits[0],
            "data_wait_s_per_step": float(np.mean(waits[steady])), "compute_s_per_step": float(np.mean(computes[steady])),
            "train_images_per_s": batch / float(np.mean(np.add(waits, computes)[steady])),
            "compute_images_per_s": batch / float(np.mean(computes[steady]))}


def evaluation(trainer: Any, limit: int | None) -> dict[str, Any]:
    from harness.evaluate import evaluate

    test = trainer.parts.test
    if limit is not None and limit < len(test):
        import torch

        test = test.subset(torch.arange(limit))
    with PeakRss() as memory:
        tick = time.perf_counter()
        embeddings = trainer.embed(test)
        embed_s = time.perf_counter() - tick
    labels = test.labels.numpy()
    tick = time.perf_counter()
    evaluate(embeddings, labels, metrics=list(trainer.cfg.eval.metrics), distance=trainer.cfg.eval.distance)
    metrics_s = time.perf_counter() - tick
    return {"images": len(test), "embed_s": embed_s, "embed_images_per_s": len(test) / embed_s,
            "metrics_s": metrics_s, "peak_rss_mb": memory.peak_mb,
            "eval_batch_size": trainer.run.execution.eval_batch_size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.rehearsal", description=__doc__.split("\n")[0])
    parser.add_argument("--folder", type=Path, default=None, help="where to generate (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the generated dataset")
    parser.add_argument("--decode-images", type=int, default=300, help="images timed per pipeline stage")
    parser.add_argument("--batch", type=int, default=16, help="training batch of the timed steps")
    parser.add_argument("--train-budget-s", type=float, default=120.0, help="seconds of training steps to time")
    parser.add_argument("--eval-images", type=int, default=None, help="embed only this many test images")
    parser.add_argument("--out", type=Path, default=Path("rehearsal.json"))
    args = parser.parse_args(argv)
    import torch

    workers = int(os.environ.get("HARNESS_WORKERS") or min(4, os.cpu_count() or 1))
    scratch = Path(tempfile.mkdtemp(prefix="harness-rehearsal-", dir=args.folder))
    report: dict[str, Any] = {"host": platform.node(), "cpu_count": os.cpu_count(),
                              "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                              "load_1min_at_start": os.getloadavg()[0], "loader_workers": workers}
    try:
        tick = time.perf_counter()
        folder = generate(scratch, os.cpu_count() or 1)
        files = sorted((folder / "images").rglob("*.jpg"))
        report["dataset"] = {"images": len(files), "generate_s": time.perf_counter() - tick,
                             "mean_kb": float(np.mean([p.stat().st_size for p in files[::50]]) / 1024)}
        print(f"generated {len(files)} JPEGs in {report['dataset']['generate_s']:.0f} s", flush=True)
        chosen = [files[i] for i in np.random.default_rng(0).choice(len(files), args.decode_images, replace=False)]
        report["per_worker_images_per_s"] = decode_rates(chosen, scratch)
        print(json.dumps(report["per_worker_images_per_s"], indent=1), flush=True)
        torch.set_num_threads(os.cpu_count() or 1)
        trainer = trainer_for(scratch, args.batch, workers)
        report["train"] = train_steps(trainer, args.train_budget_s)
        print(json.dumps(report["train"], indent=1), flush=True)
        report["eval"] = evaluation(trainer, args.eval_images)
        print(json.dumps(report["eval"], indent=1), flush=True)
        report["load_1min_at_end"] = os.getloadavg()[0]
        args.out.write_text(json.dumps(report, indent=1) + "\n")
        print(f"written to {args.out}")
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
