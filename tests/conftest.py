"""Shared fixtures: a scratch copy of experiments/ and paper/, a helper that runs the CLI in-process, and
`--other-host`, which makes this machine report another numerical environment (tests must not depend on which)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent

# Host tools some tests need; .ci/run installs them, so in CI they run rather than skip.
LATEX = all(shutil.which(tool) for tool in ("latexmk", "pdflatex"))
PDFTOTEXT = shutil.which("pdftotext") is not None
NEEDS_LATEX = pytest.mark.skipif(not LATEX, reason="needs latexmk and pdflatex (apt-get install latexmk "
                                 "texlive-latex-recommended texlive-fonts-recommended lmodern; CI installs them)")


def pdf_built(paper: Path) -> Path:
    """The PDF a render with LaTeX built under `paper`; without LaTeX the test (whose other checks have passed by
    now) ends as skipped with the reason, never as a pass that checked no PDF."""
    if not LATEX:
        pytest.skip("the PDF part needs latexmk and pdflatex (apt-get install latexmk texlive-latex-recommended "
                    "texlive-fonts-recommended lmodern; CI installs them)")
    pdf = paper / "build" / "main.pdf"
    assert pdf.stat().st_size > 10_000, pdf
    return pdf


# Instruction sets torch may report (torch.backends.cpu.get_cpu_capability()): a faked host takes one that is not
# this host's, so a test that wrote this host's value as "another" one fails on every host, not only on some.
CAPABILITIES = ("DEFAULT", "AVX2", "AVX512", "ZVECTOR", "VSX")
# What harness.provenance.numerics() reads from the machine rather than from the software.
HOST_KEYS = ("cpu", "cpu_id", "cpu_capability", "threads")


def other_host(here: dict) -> dict:
    """`here` (a numerics dict) as another machine would report it: every host value differs from this host's."""
    capability = next(c for c in CAPABILITIES if c != here.get("cpu_capability"))
    threads = here.get("threads") or 1
    return {**here, "cpu": f"not {here.get('cpu')}", "cpu_id": f"not {here.get('cpu_id')}",
            "cpu_capability": capability, "threads": threads + 1}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--other-host", action="store_true",
                     help="run as if on another machine: torch dispatches to another instruction set and runs on "
                          "another thread count (child processes too), and harness.provenance reports another CPU "
                          "and CPU id (CI runs the verification and provenance tests once this way)")


def _capability_of_a_fresh_process() -> str:
    """The instruction set torch picks here (ATEN_CPU_CAPABILITY included), asked of a child: asking in this process
    would fix it for this process (torch reads ATEN_CPU_CAPABILITY once, at its first kernel)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                          capture_output=True, text=True, check=True, timeout=120)
    return done.stdout.strip()


# The lower instruction set torch can be told to use (ATEN_CPU_CAPABILITY) in place of each one.
LOWER_CAPABILITY = {"AVX512": "avx2", "AVX2": "default"}


def pytest_configure(config: pytest.Config) -> None:
    # The caller's shell must not steer the suite (harness reads these when first imported, which is after this): $HARNESS_EXPERIMENTS would add studies, $HARNESS_DATA move the
    # data, and `make test PROFILE=smoke` passes PROFILE to every `make` a test starts (through MAKEFLAGS).
    # Messages of the tools a test starts are read in English.
    for name in [n for n in os.environ if n.startswith("HARNESS_")] + ["MAKEFLAGS", "MFLAGS", "MAKELEVEL",
                                                                        "LC_ALL", "LANGUAGE"]:
        os.environ.pop(name, None)
    os.environ["LC_MESSAGES"] = "C"
    # --other-host: before test modules are imported, so that values they read at import (numerics() as HERE) are
    # the faked ones, and before any torch kernel has run, so that the instruction set can still be chosen.
    if not config.getoption("--other-host"):
        return
    import torch

    from harness import provenance

    real = {"cpu": provenance.cpu_model(), "cpu_id": provenance.cpu_id(),
            "cpu_capability": _capability_of_a_fresh_process(), "threads": torch.get_num_threads()}
    faked = other_host(real)
    # Real where it can be: torch computes with another instruction set and thread count, and so do the harness
    # processes a test starts (they inherit both variables). Reported only where it cannot: the CPU's name and id,
    # and the instruction set of a host that has no lower one.
    if real["cpu_capability"] in LOWER_CAPABILITY:
        os.environ["ATEN_CPU_CAPABILITY"] = LOWER_CAPABILITY[real["cpu_capability"]]
    else:
        torch.backends.cpu.get_cpu_capability = lambda: faked["cpu_capability"]
    threads = real["threads"] - 1 if real["threads"] > 1 else 2
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    # Neither the time zone nor the file-creation mask may show in a record, a file's mode or a rendered page.
    os.environ["TZ"] = "Pacific/Chatham"  # UTC+12:45, or +13:45 in its summer
    time.tzset()
    os.umask(0o077)
    provenance.cpu_model = lambda: faked["cpu"]
    provenance.cpu_id = lambda: faked["cpu_id"]
    now = provenance.numerics()
    config.other_host = {key: (real[key], now[key]) for key in HOST_KEYS}
    if same := [key for key, (theirs, ours) in config.other_host.items() if theirs == ours]:
        raise pytest.UsageError(f"--other-host: could not fake {', '.join(same)} (a torch kernel ran before "
                                "pytest_configure?)")


def pytest_report_header(config: pytest.Config) -> list[str]:
    if getattr(config, "other_host", None):
        return ["faked other host (--other-host): " + "; ".join(
            f"{key} {theirs!r} reported as {ours!r}" for key, (theirs, ours) in config.other_host.items())]
    return []


def corrected_only(doc: dict, losses: tuple[str, ...] | None = None) -> dict:
    """loss_epochs.yaml (as loaded) reduced to its corrected block, optionally to some losses: the small generic
    matrix many tests train, without the chain of the original's protocol (tested on its own)."""
    block = dict(doc["matrix"][0])
    block["loss"] = [v for v in block["loss"] if losses is None or v["label"] in losses]
    doc["matrix"] = [block]
    doc.pop("chains", None)
    doc.get("report", {}).pop("protocols", None)  # they compare with that chain
    doc.get("report", {}).pop("claims", None)
    doc.get("report", {}).pop("answered_by", None)  # it names claims
    for profile in doc["profiles"].values():  # their `budget` axis would be added to the block
        profile.pop("matrix", None)
    return doc


@pytest.fixture
def experiments(tmp_path: Path) -> Path:
    """A copy of experiments/ that a test may edit (typos, wrong types) without touching the repository."""
    target = tmp_path / "experiments"
    shutil.copytree(REPO / "experiments", target)
    return target


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Run `harness ARGS...` in-process; returns (exit code, stdout, stderr)."""

    def invoke(*args: str) -> tuple[int, str, str]:
        from harness import cli

        code = cli.main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def clustered(n: int, classes: int, dim: int, seed: int, spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs around random class centres: embeddings with realistic overlap for metric tests."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    centres = rng.standard_normal((classes, dim)) * 2
    x = centres[labels] + spread * rng.standard_normal((n, dim))
    return x.astype(np.float32), labels


def with_config(run, config):
    """`run` with another config, and so with that config's run_id (a record must hash to its run_id)."""
    import dataclasses

    from harness import identity

    return dataclasses.replace(run, config=config, run_id=identity.run_id(config.model_dump(mode="json")))


def fake_record(config: dict | None = None, status: str = "ok", **changes) -> dict:
    """A valid record dict (as store.write takes it) of a small config, for tests of storage and reading."""
    from harness import identity, store

    config = config if config is not None else {"seed": 0, "model": {"name": "thesis_convnet"}}
    record = {"schema_version": store.SCHEMA_VERSION, "run_id": identity.run_id(config), "study": "loss_epochs",
              "profile": "smoke", "axes": {"loss": "nca"}, "seed": config["seed"], "config": config,
              "status": status, "metrics": [{"epoch": 1, "knn_accuracy": 0.5}] if status == "ok" else [],
              "loss_curve": [{"epoch": 1, "step": 1, "loss": 1.0}], "timing": {"wall_s": 1.0},
              "provenance": {"git": {"commit": None, "dirty": None}}}
    if status == "failed":
        record["error"] = {"type": "RunFailure", "message": "loss became nan at epoch 1, step 1"}
    return {**record, **changes}


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """`harness verify` in-process sets torch's thread count to the records'; the next test runs on this host's."""
    import torch

    threads = torch.get_num_threads()
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def frame(rows: list[tuple]):
    """(axes dict, run_id, seed, epoch, metric, value) tuples -> the long frame's layout (aggregate.long_frame)."""
    import pandas as pd

    return pd.DataFrame([{**axes, "run_id": run, "seed": seed, "epoch": epoch, "metric": metric, "value": value}
                         for axes, run, seed, epoch, metric, value in rows])


def pm(*per_seed: float) -> str:
    """A cell's expected text, computed here with scipy: mean and 95% t half-width over the seeds, in percent."""
    from scipy import stats

    mean, std, n = np.mean(per_seed), np.std(per_seed, ddof=1), len(per_seed)
    return f"{mean * 100:.2f} $\\pm$ {stats.t.ppf(0.975, n - 1) * std / np.sqrt(n) * 100:.2f}"


def recorded(run, *, train_size: int, train_s: float, eval_s: float, wall_s: float) -> dict:
    """A finished record of `run` with the given sizes and timings (for the estimate's arithmetic)."""
    config = run.config_dict()
    metrics = [{"epoch": e, "knn_accuracy": 0.5} for e in config["train"]["eval_epochs"]]
    return fake_record(config, axes=run.axes, study=run.study, profile=run.profile, metrics=metrics,
                       timing={"train_s": train_s, "eval_s": eval_s, "wall_s": wall_s},
                       data={"train_size": train_size, "test_size": 10, "num_classes": 10, "input_shape": [1, 8, 8],
                             "normalisation": {}})


class DemoServer:
    """`harness demo` in a subprocess on a free port; stopped (and its RSS read) at the end."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "harness", "demo", "--port", "0", *args], cwd=REPO,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env={**os.environ, **(env or {})})
        line = self.process.stdout.readline()
        found = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
        if not found:
            self.stop()
            raise AssertionError(f"no address printed: {line!r} {self.process.stderr.read()}")
        self.url = found.group(1).rstrip("/")

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024

    def post(self, path: str, body: object) -> tuple[int, dict]:
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def get(self, path: str) -> tuple[int, bytes]:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return response.status, response.read()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


