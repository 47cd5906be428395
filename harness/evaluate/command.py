"""`harness evaluate FILE.npz`: the thesis's metrics on embeddings a user brings, as JSON on stdout."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness import catalog
from harness.errors import HarnessError


def add_parser(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("evaluate", help="score your own embeddings (.npz) with the thesis's metrics; JSON on stdout")
    ev.add_argument("file", type=Path, help="arrays query, query_labels [, reference, reference_labels]")
    ev.add_argument("--metrics", nargs="+", default=["precision_at_1", "recall_at_k", "map_at_r", "r_precision",
                                                      "knn_accuracy"],
                    help=f"any of: {' '.join(catalog.METRICS)}")
    ev.add_argument("--k", type=int, nargs="+", default=list(catalog.DEFAULT_RECALL_KS),
                    help="K values of Recall@K")
    ev.add_argument("--knn-k", type=int, default=3, help="neighbours voting in knn_accuracy (default 3)")
    ev.add_argument("--distance", choices=catalog.DISTANCES, default="euclidean")
    ev.add_argument("--seed", type=int, default=0, help="for k-means, pair, triplet and episode sampling")
    ev.add_argument("--n-way", type=int, default=5, help="classes per episode (episode_accuracy)")
    ev.add_argument("--k-shot", type=int, default=1, help="support items per class (episode_accuracy)")
    ev.add_argument("--episodes", type=int, default=600, help="episodes (episode_accuracy)")
    ev.add_argument("--no-progress", action="store_true")
    ev.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness import evaluate
    from harness.evaluate import npz

    if not 0 <= args.seed < 2**63:  # as a run's seed (harness.schema.RunConfig)
        raise HarnessError(f"--seed {args.seed}: expected an integer from 0 to 2**63 - 1")
    arrays = npz.embeddings(args.file)
    values = evaluate.evaluate(arrays["query"], arrays["query_labels"], arrays.get("reference"),
                               arrays.get("reference_labels"), metrics=args.metrics, knn_k=args.knn_k,
                               recall_ks=args.k, distance=args.distance, seed=args.seed,
                               progress=sys.stderr.isatty() and not args.no_progress,
                               n_way=args.n_way, k_shot=args.k_shot, n_episodes=args.episodes)
    print(json.dumps(values, indent=1))
    return 0
