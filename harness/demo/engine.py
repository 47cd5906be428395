"""The demo's model side: a recorded run's network on its saved weights, its reference set, queries and comparisons.

No HTTP here: the server passes bytes in and JSON-ready dicts out, so everything is testable without a browser.
The reference set is the one the study scores against (the training split for kNN classification, the scored
test items for retrieval), the neighbours are found with faiss, the class is the kNN vote of harness.evaluate
(majority of the eval.knn_k nearest, a tie to the smallest label), and two images are "same" when their
distance is at most the verification threshold chosen on validation pairs (harness.evaluate.pairs).
"""

from __future__ import annotations

import base64
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness import data as datasets
from harness.catalog import TRAIN_REFERENCE_METRICS
from harness.demo import images
from harness.demo.runs import Chosen, check_weights
from harness.errors import HarnessError

# Neighbours shown per query (the first eval.knn_k of them vote).
SHOWN = 8
# Reference images embedded per forward pass at start-up.
BATCH = 256

# Readable class names by dataset (others show "class 17"): the labels' meaning, never used to compute anything.
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"),
    "mnist": tuple(str(d) for d in range(10)),
    "digits": tuple(str(d) for d in range(10)),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}


def _load(name: str, root: Path | None) -> datasets.Dataset:
    """The dataset, read for this server alone: not kept in harness.data's cache, so that once the reference split
    is copied out the whole dataset (220 MB of Fashion-MNIST pixels) is freed."""
    from harness.catalog import DATASETS
    from harness.errors import DataError

    try:
        return DATASETS.get(name)(datasets.data_root(root).resolve())
    except OSError as exc:
        raise DataError(f"{name}: cannot read {exc.filename or datasets.data_root(root)} ({exc.strerror or exc})") \
            from None


def vote(labels: np.ndarray) -> int:
    """The kNN vote of harness.evaluate.metrics.knn_accuracy: the most frequent label, a tie to the smallest."""
    classes, counts = np.unique(np.asarray(labels), return_counts=True)
    return int(classes[counts.argmax()])  # unique sorts the classes; argmax takes the first maximum


@dataclass(frozen=True)
class Reference:
    """The items a query is compared with: which split, their labels, and how to show them."""

    what: str  # said on the page
    split: Any
    labels: np.ndarray


def reference_split(chosen: Chosen, parts: datasets.RunSplits) -> Reference:
    """The split the study scores queries against, as harness.evaluate.runs does."""
    cfg = chosen.run.config.eval
    if any(m in TRAIN_REFERENCE_METRICS for m in cfg.metrics):
        what = ("the run's training split (the kNN reference its knn_accuracy is scored against)"
                if cfg.knn_reference == "clean" else
                "the run's training split, one clean pass (its record's kNN used the embeddings collected during "
                "training, which are not kept)")
        split = parts.train
    elif cfg.classes == "unseen":
        what, split = "the test items of the classes the run never trained on (which its retrieval metrics rank)", \
            parts.unseen
    else:
        what, split = "the test items of the run's classes (which its metrics rank against each other)", parts.test
    return Reference(what, split, split.labels.cpu().numpy())


class Engine:
    """One recorded run, ready to answer: built once at start-up (a few seconds), then queries take milliseconds."""

    def __init__(self, chosen: Chosen, data_root: Path | None = None) -> None:
        from safetensors.torch import load_file

        from harness.models import build_model

        started = time.perf_counter()
        self.chosen = chosen
        record, run = chosen.record, chosen.run
        self.weights = check_weights(chosen)
        weights = self.weights.path
        cfg = run.config
        dataset = _load(cfg.data.dataset, data_root)
        if dataset.train.kind != "tensor":
            raise HarnessError(f"{cfg.data.dataset} is a dataset of image files; the demo serves runs on in-memory "
                               "image datasets (MNIST, Fashion-MNIST, digits, glyphs, CIFAR)")
        self.shape = tuple(int(v) for v in record.data.input_shape)
        self.model = build_model(cfg.model, self.shape)
        try:
            self.model.load_state_dict(load_file(str(weights)), strict=True)
        except (RuntimeError, ValueError, OSError) as exc:
            raise HarnessError(f"{weights}: not this run's network ({' '.join(str(exc).split())[:160]}); delete it "
                               "and rebuild it") from None
        self.model.eval()
        self.distance = cfg.eval.distance
        self.knn_k = cfg.eval.knn_k
        parts = datasets.run_splits(dataset, cfg.data)
        self.reference = reference_split(chosen, parts)
        self.mean = np.asarray(dataset.mean, dtype=np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(dataset.std, dtype=np.float32).reshape(-1, 1, 1)
        # The datasets keep pixels in [0, 1] (MNIST-like, glyphs, CIFAR) or [0, 16] (scikit-learn's digits): the
        # brightest training pixel says which, so a 0..255 upload lands on the scale the network was trained on.
        self.pixel_max = float(np.ceil((dataset.train.images.amax() * float(self.std.max())
                                        + float(self.mean.max())).item() - 1e-3))
        self.embeddings = self._embed_split(self.reference.split)
        self.index = self._index(self.embeddings)
        self.threshold, self.threshold_source = self._threshold(parts)
        self.names = CLASS_NAMES.get(cfg.data.dataset)
        self._thumbs: dict[int, str] = {}
        self.startup_s = time.perf_counter() - started

    # -- embeddings and neighbours -------------------------------------------------------------------------------
    @torch.no_grad()
    def _embed(self, batch: torch.Tensor) -> np.ndarray:
        return self.model(batch).float().numpy()

    def _embed_split(self, split: Any) -> np.ndarray:
        return np.concatenate([self._embed(split.images[i:i + BATCH]) for i in range(0, len(split), BATCH)])

    def _prepared(self, x: np.ndarray) -> np.ndarray:
        """Rows for faiss: unit rows for cosine (inner product = cos), as they are for Euclidean distance."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.distance == "cosine":
            norms = np.linalg.norm(x, axis=1, keepdims=True)
            if not (norms > 0).all():
                raise images.InputError("this image's embedding is all zeros: cosine distance has no value for it")
            x = x / norms
        return x

    def _index(self, embeddings: np.ndarray) -> Any:
        import faiss

        index = faiss.IndexFlatIP(embeddings.shape[1]) if self.distance == "cosine" else \
            faiss.IndexFlatL2(embeddings.shape[1])
        index.add(self._prepared(embeddings))
        return index

    def _distances(self, raw: np.ndarray) -> np.ndarray:
        """faiss's scores as the evaluation's distances: 1 - cos, or the (not squared) Euclidean distance."""
        return 1.0 - raw if self.distance == "cosine" else np.sqrt(np.maximum(raw, 0.0))

    def pair_distance(self, a: np.ndarray, b: np.ndarray) -> float:
        from harness.evaluate.pairs import pair_distance

        return float(pair_distance(a[None], b[None], self.distance)[0])

    # -- the verification threshold --------------------------------------------------------------------------------
    def _threshold(self, parts: datasets.RunSplits) -> tuple[float, str]:
        """The record's verification threshold, or the same computation on the run's test items when the study
        does not score verification (then the page says it was computed here)."""
        from harness.evaluate import evaluate

        record, cfg = self.chosen.record, self.chosen.run.config.eval
        last = record.last_metrics()
        if "verification_threshold" in last:
            return float(last["verification_threshold"]), (
                f"recorded: chosen on validation pairs (half of the scored test items) at epoch {last['epoch']}, "
                f"where it gave verification accuracy {last.get('verification_accuracy', float('nan')):.3f}")
        split = parts.unseen if cfg.classes == "unseen" else parts.test
        embeddings = self._embed_split(split) if split is not self.reference.split else self.embeddings
        options = {k: v for k, v in cfg.options.items() if k in ("n_pairs", "validation_fraction")}
        values = evaluate(embeddings, split.labels.cpu().numpy(), metrics=["verification"], distance=self.distance,
                          **options)
        return float(values["verification_threshold"]), (
            "computed by the demo (this study does not score verification): the study's verification metric on the "
            f"run's test items, threshold chosen on their validation half, which gives "
            f"{values['verification_accuracy']:.3f} accuracy on the other half")

    # -- queries -----------------------------------------------------------------------------------------------------
    def name(self, label: int) -> str:
        return self.names[label] if self.names and 0 <= label < len(self.names) else f"class {label}"

    def pixels(self, data: bytes, source: str = "file") -> tuple[np.ndarray, list[str]]:
        return images.decode(data, self.shape, source)

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        normalised = (pixels * self.pixel_max - self.mean) / self.std
        embedding = self._embed(torch.from_numpy(normalised.astype(np.float32))[None])[0]
        if not np.isfinite(embedding).all():
            raise images.InputError("the network's embedding of this image is not finite")
        return embedding

    def neighbours(self, data: bytes, source: str = "file") -> dict[str, Any]:
        """The nearest reference images of one image, and the class their vote gives."""
        started = time.perf_counter()
        pixels, notices = self.pixels(data, source)
        embedding = self.embed_pixels(pixels)
        query = self._prepared(embedding[None])
        shown = min(max(SHOWN, self.knn_k), len(self.reference.labels))
        raw, found = self.index.search(query, shown)
        distances, found = self._distances(raw[0]), found[0]
        labels = self.reference.labels[found]
        voters = labels[: self.knn_k]
        predicted = vote(voters)
        votes = {self.name(int(c)): int(n) for c, n in zip(*np.unique(voters, return_counts=True))}
        return {
            "prediction": {"label": predicted, "name": self.name(predicted), "votes": votes, "k": self.knn_k},
            "neighbours": [{"rank": r + 1, "index": int(i), "label": int(l), "name": self.name(int(l)),
                            "distance": float(d), "votes": r < self.knn_k, "image": self.thumbnail(int(i))}
                           for r, (i, l, d) in enumerate(zip(found, labels, distances))],
            "input": self.png(pixels), "notices": notices,
            "server_ms": (time.perf_counter() - started) * 1000,
        }

    def compare(self, first: bytes, second: bytes, sources: tuple[str, str] = ("file", "file")) -> dict[str, Any]:
        """Two images' distance and the same/different verdict at the run's verification threshold."""
        started = time.perf_counter()
        sides, notices = [], []
        for which, data, source in zip(("first", "second"), (first, second), sources):
            try:
                pixels, said = self.pixels(data, source)
            except images.InputError as exc:
                raise images.InputError(f"{which} image: {exc}") from None
            notices += [f"{which} image: {n}" for n in said]
            sides.append((pixels, self.embed_pixels(pixels)))
        distance = self.pair_distance(sides[0][1], sides[1][1])
        if self.distance == "cosine" and not all(np.any(e != 0) for _, e in sides):
            raise images.InputError("an embedding is all zeros: cosine distance has no value for it")
        return {"distance": distance, "threshold": self.threshold, "same": bool(distance <= self.threshold),
                "distance_name": self.distance_name, "inputs": [self.png(p) for p, _ in sides], "notices": notices,
                "server_ms": (time.perf_counter() - started) * 1000}

    @property
    def distance_name(self) -> str:
        return "cosine distance (1 - cosine similarity)" if self.distance == "cosine" else "Euclidean distance"

    # -- pictures --------------------------------------------------------------------------------------------------
    def png(self, pixels: np.ndarray) -> str:
        """A data URL of pixels in [0, 1], (C, H, W)."""
        from PIL import Image

        array = np.clip(np.round(pixels * 255), 0, 255).astype(np.uint8)
        image = Image.fromarray(array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()

    def thumbnail(self, index: int) -> str:
        if index not in self._thumbs:
            normalised = self.reference.split.images[index].numpy()
            self._thumbs[index] = self.png((normalised * self.std + self.mean) / self.pixel_max)
        return self._thumbs[index]

    # -- what the page says about the run ------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        chosen = self.chosen
        record, study = chosen.record, chosen.study
        last = record.last_metrics()
        return {
            "study": study.name, "title": study.spec.title, "profile": study.profile,
            "profile_description": study.description, "run_id": record.run_id, "seed": record.seed,
            "axes": {str(k): v for k, v in chosen.run.axes.items()}, "dataset": record.config["data"]["dataset"],
            "model": record.config["model"], "loss": record.config["loss"].get("name"),
            "record": str(Path(chosen.results) / study.name / study.profile / f"{record.run_id}.json"),
            "record_digest": record.digest, "weights_sha256": self.weights.sha256,
            "weights_recorded": self.weights.recorded, "weights": self.weights.provenance,
            "metrics_epoch": last.get("epoch"), "metrics": {k: v for k, v in last.items() if k != "epoch"},
            "tables": [f"{study.name}/{t.name}" for t in study.spec.report.tables],
            "default_run": study.demo_run == record.run_id,
            "shape": list(self.shape), "reference": self.reference.what, "reference_size": len(self.reference.labels),
            "classes": sorted({self.name(int(c)) for c in np.unique(self.reference.labels)})[:50],
            "class_count": int(len(np.unique(self.reference.labels))),
            "distance": self.distance_name, "knn_k": self.knn_k,
            "threshold": self.threshold, "threshold_source": self.threshold_source,
            "verify": f"make table T={study.name}" + ("" if study.profile == "quick" else f" PROFILE={study.profile}"),
            "startup_s": self.startup_s,
        }
