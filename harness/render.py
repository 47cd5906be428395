"""Records -> paper/generated/: Jinja2 LaTeX tables, seaborn figures, then latexmk -> PDF. Reads results/ only."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from harness import aggregate, spec, store
from harness.errors import HarnessError

PAPER_DIR = Path(__file__).resolve().parent.parent / "paper"
LATEX_PACKAGES = "latexmk texlive-latex-recommended texlive-fonts-recommended lmodern"

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: Any) -> str:
    return "".join(_SPECIAL.get(ch, ch) for ch in str(text))


def environment(templates: Path) -> jinja2.Environment:
    """Jinja2 with LaTeX-looking delimiters, \\BLOCK{...}, \\VAR{...}, \\#{...}, so templates stay valid-looking TeX."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)), block_start_string=r"\BLOCK{", block_end_string="}",
        variable_start_string=r"\VAR{", variable_end_string="}", comment_start_string=r"\#{",
        comment_end_string="}", undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        autoescape=False, keep_trailing_newline=True)
    env.filters["tex"] = latex_escape
    return env


def _cell(mean: float, std: float, n: int, scale: float) -> str:
    if not np.isfinite(mean):
        return "--"
    if n < 2 or not np.isfinite(std):
        return f"{mean * scale:.2f}"
    return f"{mean * scale:.2f} $\\pm$ {std * scale:.2f}"


def _ordered(values: Sequence[Any], order: Sequence[Any]) -> list[Any]:
    """Axis labels in the order the matrix declares them (epochs ascending)."""
    present = list(dict.fromkeys(values))
    return [v for v in order if v in present] + sorted(v for v in present if v not in order)


def setup_facts(study: spec.Study, records: list[dict[str, Any]]) -> dict[str, Any]:
    """What produced the numbers, read from the records themselves (not from the YAML)."""
    ok = [r for r in records if r["status"] == "ok"]
    first = ok[0]
    cfg = first["config"]
    seeds = sorted({r["seed"] for r in ok})
    commits = sorted({(r["provenance"]["git"]["commit"] or "unknown")[:10] + ("+dirty" if r["provenance"]["git"]["dirty"] else "")
                      for r in ok})
    devices = sorted({r["provenance"]["accelerate"]["device"] for r in ok})
    return {
        "profile": study.profile,
        "description": study.description,
        "dataset": cfg["data"]["dataset"],
        "train_size": first["data"]["train_size"],
        "test_size": first["data"]["test_size"],
        "model": cfg["model"]["name"],
        "embedding_dim": cfg["model"].get("embedding_dim"),
        "optimizer": cfg["optimizer"],
        "batch_size": cfg["train"]["batch_size"],
        "epochs": cfg["train"]["epochs"],
        "eval_epochs": cfg["train"]["eval_epochs"],
        "seeds": seeds,
        "runs": len(ok),
        "failed": len(records) - len(ok),
        "commits": commits,
        "devices": devices,
        "train_hours": sum(r["timing"]["wall_s"] for r in records) / 3600.0,
    }


class StudyRenderer:
    """Everything one study's chapter includes, written under paper/generated/<study>/."""

    def __init__(self, study: spec.Study, results: Path, out_dir: Path, env: jinja2.Environment) -> None:
        self.study = study
        self.out = out_dir / study.name
        self.env = env
        scan = store.scan(results, study.name, study.profile)
        wanted = {r.run_id for r in study.runs}
        # Records of this study's current matrix only: runs of an edited YAML are not mixed into the tables.
        self.records = [r for r in [*scan.ok.values(), *scan.failed.values()] if r["run_id"] in wanted]
        self.corrupt = scan.corrupt
        self.frame = aggregate.long_frame(self.records)
        self.axis_order = {axis: [spec._cell(axis, v)[0] for v in values]
                           for axis, values in {**study.spec.matrix,
                                                **study.spec.profiles[study.profile].matrix}.items()}

    def render(self) -> list[Path]:
        # Start clean so no file from an earlier render (or an earlier matrix) can reach the PDF.
        shutil.rmtree(self.out, ignore_errors=True)
        self.out.mkdir(parents=True)
        if self.frame.empty:
            return [self._write("missing.tex", self.env.get_template("missing.tex.j2").render(
                study=self.study.name, profile=self.study.profile, expected=len(self.study.runs)))]
        facts = setup_facts(self.study, self.records)
        written = [self._write("setup.tex", self.env.get_template("setup.tex.j2").render(
            facts=facts, study=self.study.name, expected=len(self.study.runs)))]
        for table in self.study.spec.report.tables:
            written.append(self.table(table, facts))
        for figure in self.study.spec.report.figures:
            written.extend(self.figure(figure, facts))
        if self.study.spec.report.reference:
            written.append(self.reference(self.study.spec.report.reference, facts))
        return written

    def _write(self, name: str, text: str) -> Path:
        path = self.out / name
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        return path

    def _order(self, axis: str, values: Sequence[Any]) -> list[Any]:
        return _ordered(values, self.axis_order.get(axis, sorted(set(values))))

    def table(self, table: spec.TableSpec, facts: dict[str, Any]) -> Path:
        data = self.frame[self.frame["metric"] == table.metric]
        summary = aggregate.summarise(data, [table.rows, table.columns])
        rows = self._order(table.rows, summary[table.rows].tolist())
        columns = self._order(table.columns, summary[table.columns].tolist())
        scale = 100.0 if table.percent else 1.0
        cells: dict[tuple[Any, Any], dict[str, Any]] = {}
        for column in columns:
            part = summary[summary[table.columns] == column].set_index(table.rows)
            entries = [part.loc[r] if r in part.index else None for r in rows]
            means = [e["mean"] if e is not None else np.nan for e in entries]
            stds = [e["std"] if e is not None else np.nan for e in entries]
            ns = [int(e["n"]) if e is not None else 0 for e in entries]
            best = aggregate.clearly_best(means, stds, ns)
            for i, row in enumerate(rows):
                cells[(row, column)] = {"text": _cell(means[i], stds[i], ns[i], scale), "best": i == best}
        ns = sorted(set(summary["n"].astype(int)))
        return self._write(f"table_{table.name}.tex", self.env.get_template("table.tex.j2").render(
            table=table, rows=rows, columns=columns, cells=cells, facts=facts, ns=ns, study=self.study.name))

    def figure(self, figure: spec.FigureSpec, facts: dict[str, Any]) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import seaborn as sns

        data = self.frame[self.frame["metric"].isin(figure.metrics)].copy()
        hue_order = self._order(figure.hue, data[figure.hue].tolist())
        sns.set_theme(context="paper", style="whitegrid")
        grid = sns.relplot(data=data, x=figure.x, y="value", hue=figure.hue, hue_order=hue_order, col="metric",
                           col_order=figure.metrics, kind="line", errorbar="sd", marker="o",
                           facet_kws={"sharey": False}, height=2.4, aspect=1.1)
        grid.set_titles("{col_name}")
        grid.set_axis_labels(figure.x, "")
        if figure.x == "epoch":
            for ax in grid.axes.flat:
                ax.set_xscale("log")
                ax.set_xticks(sorted(data["epoch"].unique()))
                ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
                ax.minorticks_off()
        pdf = self.out / f"figure_{figure.name}.pdf"
        # Fixed metadata so the same records give the same bytes.
        grid.savefig(pdf, metadata={"CreationDate": None, "ModDate": None}, bbox_inches="tight")
        plt.close(grid.figure)
        tex = self._write(f"figure_{figure.name}.tex", self.env.get_template("figure.tex.j2").render(
            figure=figure, path=f"generated/{self.study.name}/{pdf.name}", facts=facts, study=self.study.name))
        return [pdf, tex]

    def reference(self, ref: spec.ReferenceSpec, facts: dict[str, Any]) -> Path:
        original = pd.read_csv(self.study.path.parent / ref.file)
        original = original.assign(row=original[ref.rows].map(lambda v: ref.row_map.get(v, v)))
        theirs_scale = 1.0 if ref.percent_in_file else 100.0
        row_axis = ref.axis
        ours = aggregate.summarise(self.frame[self.frame["metric"] == ref.metric], [row_axis, "epoch"])
        rows = self._order(row_axis, list(ours[row_axis]) + list(original["row"]))
        their_cols = sorted(original[ref.columns].unique())
        our_cols = sorted(ours["epoch"].unique())
        body = []
        for row in rows:
            theirs = original[original["row"] == row].set_index(ref.columns)[ref.value_column]
            mine = ours[ours[row_axis] == row].set_index("epoch")
            body.append({
                "label": row,
                "theirs": [f"{theirs[c] * theirs_scale:.2f}" if c in theirs.index else "--" for c in their_cols],
                "ours": [_cell(mine.loc[c, "mean"], mine.loc[c, "std"], int(mine.loc[c, "n"]), 100.0)
                         if c in mine.index else "--" for c in our_cols],
            })
        return self._write("reference.tex", self.env.get_template("reference.tex.j2").render(
            ref=ref, their_cols=their_cols, our_cols=our_cols, body=body, facts=facts, study=self.study.name))


def render(studies: Sequence[str], profile: str, results: Path, paper: Path = PAPER_DIR) -> list[Path]:
    """Write every study's generated files; a study with no records gets a note saying how to produce them."""
    env = environment(paper / "templates")
    out_dir = paper / "generated"
    written = []
    for name in studies:
        renderer = StudyRenderer(spec.load(name, profile), results, out_dir, env)
        for run_id, why in renderer.corrupt.items():
            print(f"warning: skipped {why}")
        written.extend(renderer.render())
    return written


def compile_pdf(paper: Path = PAPER_DIR, quiet: bool = True) -> Path | None:
    """latexmk -> paper/build/main.pdf; None (with one line saying what to install) when LaTeX is absent."""
    if shutil.which("latexmk") is None or shutil.which("pdflatex") is None:
        print(f"LaTeX not found: tables and figures are in {paper / 'generated'}; to build the PDF install "
              f"{LATEX_PACKAGES} (Debian/Ubuntu package names) and run `make figures`")
        return None
    cmd = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-outdir=build", "main.tex"]
    done = subprocess.run(cmd, cwd=paper, capture_output=quiet, text=True)
    if done.returncode != 0:
        log = (paper / "build" / "main.log")
        tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
        errors = [line for line in tail if line.startswith("!")] or tail[-3:]
        raise HarnessError(f"latexmk failed in {paper}: {' | '.join(errors) or done.stderr[-300:]}")
    return paper / "build" / "main.pdf"
