"""Every name an experiment file may use, by kind: leaf registries whose factories are imported on first use.

This module imports nothing but the registry, so validating a study (names, metrics, axes) costs no torch
import; the factories themselves live in the modules named here and are imported when a run builds them or
when `spec.check_components` checks their arguments.
"""

from __future__ import annotations

from harness.registry import Registry

DATASETS: Registry = Registry("dataset", {
    "mnist": "harness.data.idx:load_mnist",
    "fashion_mnist": "harness.data.idx:load_fashion_mnist",
    "cifar10": "harness.data.cifar:load_cifar10",
    "cifar100": "harness.data.cifar:load_cifar100",
    "digits": "harness.data.digits:load_digits",
    # Generated many-class glyphs (the class-disjoint quick stand-ins), and the same generator with another seed
    # (other figures) on which those stand-ins' settings are chosen without looking at their test classes.
    "glyphs": "harness.data.glyphs:load_glyphs",
    "glyphs_design": "harness.data.glyphs:load_glyphs_design",
    "cub200": "harness.data.folders:load_cub200",
    "cars196": "harness.data.folders:load_cars196",
    # The smoke profiles' datasets: the real CUB and Cars loaders reading a generated sample.
    "cub200_sample": "harness.data.samples:load_cub200_sample",
    "cars196_sample": "harness.data.samples:load_cars196_sample",
})
# How the document names each dataset (a registry name is a key, not a word a reader knows); a dataset an added
# study registers and this does not name is shown with its underscores as spaces.
DATASET_NAMES = {
    "mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100",
    "digits": "scikit-learn digits", "glyphs": "the glyph stand-in", "glyphs_design": "the glyph design set",
    "cub200": "CUB-200-2011", "cars196": "Cars196", "cub200_sample": "a CUB-200-2011 sample",
    "cars196_sample": "a Cars196 sample",
}


def dataset_name(name: str) -> str:
    """'fashion_mnist' -> 'Fashion-MNIST', for a reader."""
    return DATASET_NAMES.get(name, name.replace("_", " "))


MODELS: Registry = Registry("model", {
    "raw_input": "harness.models:RawInput",
    "thesis_convnet": "harness.models:ThesisConvNet",
    "seminar_convnet": "harness.models:SeminarConvNet",
    "cifar_resnet": "harness.models:CifarResNet",
    "resnet50": "harness.models:ResNet50Embedder",
})

LOSSES: Registry = Registry("loss", {
    "contrastive": "pytorch_metric_learning.losses:ContrastiveLoss",
    "triplet_margin": "pytorch_metric_learning.losses:TripletMarginLoss",
    "proxy_anchor": "pytorch_metric_learning.losses:ProxyAnchorLoss",
    "nca": "pytorch_metric_learning.losses:NCALoss",
    "margin": "pytorch_metric_learning.losses:MarginLoss",
    "multi_similarity": "pytorch_metric_learning.losses:MultiSimilarityLoss",
    "normalized_softmax": "pytorch_metric_learning.losses:NormalizedSoftmaxLoss",
    "arcface": "harness.objectives:ArcFace",
    "softmax_ce": "harness.objectives:SoftmaxCrossEntropy",
}, import_paths="torch.nn:Module")
MINERS: Registry = Registry("miner", {
    "triplet_margin": "pytorch_metric_learning.miners:TripletMarginMiner",
    "multi_similarity": "pytorch_metric_learning.miners:MultiSimilarityMiner",
    "batch_hard": "pytorch_metric_learning.miners:BatchHardMiner",
    "pair_margin": "pytorch_metric_learning.miners:PairMarginMiner",
}, import_paths="torch.nn:Module")
# Components a loss or miner takes by name (its `distance:` and `reducer:` keys).
LOSS_DISTANCES: Registry = Registry("distance", {
    "lp": "pytorch_metric_learning.distances:LpDistance",
    "cosine": "pytorch_metric_learning.distances:CosineSimilarity",
    "dot_product": "pytorch_metric_learning.distances:DotProductSimilarity",
}, import_paths="torch.nn:Module")
REDUCERS: Registry = Registry("reducer", {
    "mean": "pytorch_metric_learning.reducers:MeanReducer",
    "avg_non_zero": "pytorch_metric_learning.reducers:AvgNonZeroReducer",
    "divisor": "pytorch_metric_learning.reducers:DivisorReducer",
    "sum": "pytorch_metric_learning.reducers:SumReducer",
    "do_nothing": "pytorch_metric_learning.reducers:DoNothingReducer",
}, import_paths="torch.nn:Module")

OPTIMIZERS: Registry = Registry("optimizer", {"adam": "harness.optim:adam", "sgd": "harness.optim:sgd"})
SCHEDULES: Registry = Registry("learning-rate schedule", {"constant": "harness.optim:constant",
                                                          "step": "harness.optim:step"})
SAMPLERS: Registry = Registry("sampler", {"random": "harness.sampling:random_order",
                                          "m_per_class": "harness.sampling:m_per_class"})
SPLITS: Registry = Registry("class split", {"all": "harness.splits:all_classes", "first": "harness.splits:first",
                                            "random": "harness.splits:random_classes"})

# Where datasets are looked for, as every command's --data says (harness.data.data_root resolves it).
DATA_ROOT_HELP = "dataset root (default: $HARNESS_DATA or ./data)"

# The baselines every table shows: values of the reserved matrix axis `baseline` and what each sets. Neither
# trains (0 epochs, evaluated "after epoch 0"): the raw input scored with the study's distance, and the study's
# own model at initialisation. A study may also give a {label, set} value of its own on this axis.
BASELINE_AXIS = "baseline"
_NO_TRAINING = {"train.epochs": 0, "train.eval_epochs": [0], "train.warmup_epochs": 0}
BASELINES = {
    "raw_input": {"model": {"name": "raw_input"}, **_NO_TRAINING},
    "untrained": dict(_NO_TRAINING),
}
BASELINE_LABELS = tuple(BASELINES)  # raw_input, untrained: the labels every study may put on the axis

# How evaluation measures closeness between embeddings (every metric family accepts both).
DISTANCES = ("euclidean", "cosine")

METRICS: Registry = Registry("metric", {name: f"harness.evaluate.metrics:{name}" for name in (
    "precision_at_1", "recall_at_k", "map_at_r", "r_precision", "knn_accuracy", "excluded_queries", "nmi", "ami",
    "verification", "triplet_accuracy", "episode_accuracy", "original_few_shot")})
# Metrics of a classifier head's logits rather than of the embeddings.
HEAD_METRICS = ("classification_accuracy",)
# Metrics that classify test items by their neighbours in the training split; the others rank the test split
# against itself (retrieval), as in the Metric Learning Reality Check protocol.
TRAIN_REFERENCE_METRICS = frozenset({"knn_accuracy"})
# Options a call (or a study's eval.options) may pass to the metric families.
METRIC_OPTIONS = ("n_pairs", "validation_fraction", "n_triplets", "n_way", "k_shot", "n_queries", "n_episodes",
                  "classifier", "classes", "few_shot_queries", "few_shot_threshold", "fixed_threshold")
DEFAULT_RECALL_KS = (1, 2, 4, 8, 16, 32)
# What each metric writes into a record when it is not simply its own name (a table or figure refers to these).
METRIC_OUTPUTS = {
    "recall_at_k": tuple(f"recall_at_{k}" for k in DEFAULT_RECALL_KS),
    # verification_fixed_accuracy only with eval.options.fixed_threshold (the seed-004 original's fixed cosine 0.2)
    "verification": ("verification_accuracy", "verification_threshold", "roc_auc", "verification_fixed_accuracy"),
    "episode_accuracy": ("episode_accuracy", "episode_ci95", "episodes", "episode_chance"),
    "original_few_shot": ("original_few_shot_accuracy", "always_different_accuracy"),
}
# Prefixes of metrics computed on other parts of the data than the test items of the seen classes, and how a
# reader is told which part.
VALIDATION_PREFIX, UNSEEN_PREFIX = "val_", "unseen_"
METRIC_PREFIXES = {VALIDATION_PREFIX: "validation ", UNSEEN_PREFIX: "unseen classes: "}


def metric_names() -> list[str]:
    """Every metric an experiment file may request."""
    return sorted([*METRICS, *HEAD_METRICS])


def result_names() -> list[str]:
    """Every name a record's metrics can carry, prefixed ones included."""
    names = [out for name in metric_names() for out in METRIC_OUTPUTS.get(name, (name,))]
    return sorted({*names, *(prefix + n for prefix in METRIC_PREFIXES for n in names)})


# How the document names a metric: the words a reader knows, not the record's key.
METRIC_NAMES = {
    "knn_accuracy": "kNN accuracy", "precision_at_1": "precision@1", "map_at_r": "MAP@R", "r_precision": "R-precision",
    "nmi": "NMI", "ami": "AMI", "classification_accuracy": "classification accuracy", "roc_auc": "ROC AUC",
    "triplet_accuracy": "triplet accuracy", "verification_accuracy": "verification accuracy",
    "verification_fixed_accuracy": "verification accuracy at cosine 0.2",
    "episode_accuracy": "N-way 1-shot accuracy", "episode_chance": "chance, 1/N",
    "original_few_shot_accuracy": "the original's mean few-shot accuracy",
    "always_different_accuracy": "always answering \"different\"",
}


def metric_name(metric: str) -> str:
    """'unseen_episode_chance' -> 'unseen classes: chance, 1/N'; recall_at_4 -> 'Recall@4'."""
    for prefix, words in METRIC_PREFIXES.items():
        if metric.startswith(prefix):
            return words + metric_name(metric.removeprefix(prefix))
    if metric.startswith("recall_at_"):
        return f"Recall@{metric.removeprefix('recall_at_')}"
    return METRIC_NAMES.get(metric, metric.replace("_", " "))
