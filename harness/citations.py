"""Where each named thing comes from: every dataset, model, loss, miner and metric the catalog offers has a
bibliography key (paper/references.bib), and every \\cite of the paper resolves. `harness check` (make check) and
the tests enforce both, so a component added to the catalog without a source fails before the thesis does.

A component made here (the generated glyphs, the raw-input baseline) maps to OWN: the thesis describes it itself.
Components named by import path in an added study (pytorch_metric_learning.losses.SupConLoss) cite themselves
by that path and are not checked.
"""

from __future__ import annotations

import re
from pathlib import Path

OWN = "described in this thesis"

CITATIONS: dict[str, dict[str, str]] = {
    "dataset": {
        "mnist": "lecun1998mnist", "fashion_mnist": "xiao2017fashion", "cifar10": "krizhevsky2009cifar",
        "cifar100": "krizhevsky2009cifar", "digits": "pedregosa2011scikit", "glyphs": OWN, "glyphs_design": OWN,
        "cub200": "wah2011cub", "cars196": "krause2013cars",
        # generated files in the real on-disk formats, read by the real loaders (the smoke profiles)
        "cub200_sample": OWN, "cars196_sample": OWN,
    },
    "model": {
        "raw_input": OWN, "thesis_convnet": "multiprice2023", "seminar_convnet": "sorrow321seminar",
        "cifar_resnet": "he2016resnet", "resnet50": "he2016resnet",
    },
    "loss": {
        "contrastive": "hadsell2006contrastive", "triplet_margin": "schroff2015facenet",
        "proxy_anchor": "kim2020proxyanchor", "nca": "goldberger2004nca", "margin": "wu2017sampling",
        "multi_similarity": "wang2019multisimilarity", "normalized_softmax": "zhai2019classification",
        "arcface": "deng2019arcface", "softmax_ce": "goodfellow2016deep",
    },
    "miner": {
        "triplet_margin": "schroff2015facenet", "multi_similarity": "wang2019multisimilarity",
        "batch_hard": "hermans2017defense", "pair_margin": "musgrave2020pml",
    },
    "metric": {
        "precision_at_1": "musgrave2020reality", "recall_at_k": "musgrave2020reality",
        "map_at_r": "musgrave2020reality", "r_precision": "musgrave2020reality", "knn_accuracy": "cover1967nearest",
        "excluded_queries": OWN, "nmi": "vinh2010nmi", "ami": "vinh2010nmi", "verification": "koch2015siamese",
        "triplet_accuracy": "koch2015siamese", "episode_accuracy": "vinyals2016matching",
        "original_few_shot": "nicelycla2023siamese", "classification_accuracy": "goodfellow2016deep",
    },
}

_ENTRY = re.compile(r"^@\w+\{([^,\s]+),", re.M)
_CITE = re.compile(r"\\cite[tp]?\*?(?:\[[^\]]*\]){0,2}\{([^}]*)\}")


def catalog_names() -> dict[str, list[str]]:
    """Every name the catalog offers, by kind."""
    from harness import catalog

    return {"dataset": list(catalog.DATASETS), "model": list(catalog.MODELS), "loss": list(catalog.LOSSES),
            "miner": list(catalog.MINERS), "metric": catalog.metric_names()}


def bib_keys(bib: Path) -> set[str]:
    return set(_ENTRY.findall(bib.read_text())) if bib.is_file() else set()


def problems(paper: Path) -> list[str]:
    """One line per gap: a catalog name without a source, a source missing from the bibliography, a \\cite that
    does not resolve (file and line)."""
    bib = Path(paper) / "references.bib"
    keys = bib_keys(bib)
    found = []
    for kind, names in catalog_names().items():
        for name in names:
            key = CITATIONS.get(kind, {}).get(name)
            if key is None:
                found.append(f"{kind} '{name}' has no source: add its bibliography key to harness/citations.py "
                             f"(or OWN, if this thesis describes it)")
            elif key != OWN and key not in keys:
                found.append(f"{kind} '{name}': its source '{key}' is not in {bib}")
    sources = [Path(paper) / "main.tex", *sorted((Path(paper) / "chapters").glob("*.tex")),
               *sorted((Path(paper) / "templates").glob("*.j2"))]
    for path in sources:
        if not path.is_file():
            continue
        text = path.read_text()
        for match in _CITE.finditer(text):
            for key in (k.strip() for k in match.group(1).split(",")):
                if key and key not in keys:
                    line = text.count("\n", 0, match.start()) + 1
                    found.append(f"{path}:{line}: \\cite{{{key}}} is not in {bib}")
    return found
