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
    return "".join(_SPECIAL.get(ch, ch) for ch in _label(text))


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


def _label(value: Any) -> str:
    """An axis label as the YAML wrote it: pandas turns integer labels of a column with gaps into floats."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):  # a `where` that accepts several labels
        return " or ".join(_label(v) for v in value)
    return str(value)


def _natural(label: Any) -> tuple[Any, ...]:
    """Sort key that puts "9-91" before "10-90": digit runs compare as numbers."""
    import re

    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", _label(label)) if part)


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
        "datasets": sorted({r["config"]["data"]["dataset"] for r in ok}),
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
        # Why runs failed, once per distinct reason, with the cells it happened in.
        "failures": _failures(records),
    }


def _failures(records: list[dict[str, Any]]) -> list[dict[str, str]]:
    reasons: dict[str, list[str]] = {}
    for record in records:
        if record["status"] == "failed":
            where = ", ".join(f"{k} {_label(v)}" for k, v in record["axes"].items())
            cells = reasons.setdefault(record["error"]["message"], [])
            if where not in cells:
                cells.append(where)
    return [{"reason": reason, "cells": "; ".join(cells)} for reason, cells in reasons.items()]


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
        self.axis_order = study.axes
        self.labels = study.spec.report.axis_labels

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
        present = set(self.frame.columns) | {"metric"}
        for table in self.study.spec.report.tables:
            if {table.rows, table.columns} <= present:  # an axis of another profile: no such table here
                written.append(self.table(table, facts))
        for figure in self.study.spec.report.figures:
            if {figure.x, figure.hue or "metric", figure.y or "metric"} <= present:
                written.extend(self.figure(figure, facts))
        if self.study.spec.report.reference and self.study.spec.report.reference.axis in present:
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

    def label(self, axis: str) -> str:
        return self.labels.get(axis, axis)

    def rows_for(self, metrics: Sequence[str], where: dict[str, Any], epoch: str = "all") -> pd.DataFrame:
        """The long frame restricted to some metrics, to runs matching `where` (runs without one of its axes
        are kept: a baseline outside a grid), and optionally to each run's last evaluated epoch."""
        data = self.frame[self.frame["metric"].isin(metrics)]
        for axis, value in where.items():
            if axis in data:  # a list means any of its labels
                data = data[data[axis].isna() | data[axis].isin(value if isinstance(value, list) else [value])]
        if epoch == "last":
            data = data[data["epoch"] == data.groupby("run_id")["epoch"].transform("max")]
        return data

    def table(self, table: spec.TableSpec, facts: dict[str, Any]) -> Path:
        data = self.rows_for([table.metric], table.where, table.epoch)
        chosen = None
        if table.select is not None:
            data, chosen = self.select(data, table.select)
        summary = aggregate.summarise(data.dropna(subset=[table.rows, table.columns]), [table.rows, table.columns])
        # Cells whose runs all failed still get a row and say so (a failed run is a result: "batch 1 cannot train").
        failed = [r["axes"] for r in self.records if r["status"] == "failed" and table.rows in r["axes"]
                  and (table.columns == "epoch" or table.columns in r["axes"])
                  and all(r["axes"].get(a, v) == v for a, v in table.where.items())]
        rows = self._order(table.rows, summary[table.rows].tolist() + [a[table.rows] for a in failed])
        columns = self._order(table.columns, summary[table.columns].tolist()
                              + [a[table.columns] for a in failed if table.columns != "epoch"])
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
                text = _cell(means[i], stds[i], ns[i], scale)
                if ns[i] == 0 and any(a[table.rows] == row and (table.columns == "epoch" or a[table.columns] == column)
                                      for a in failed):
                    text = "failed"
                cells[(row, column)] = {"text": text, "best": i == best}
        ns = sorted(set(summary["n"].astype(int)))
        return self._write(f"table_{table.name}.tex", self.env.get_template("table.tex.j2").render(
            table=table, rows=rows, columns=columns, cells=cells, facts=facts, ns=ns, study=self.study.name,
            row_label=self.label(table.rows), column_label=self.label(table.columns), chosen=chosen))

    def figure(self, figure: spec.FigureSpec, facts: dict[str, Any]) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import seaborn as sns

        sns.set_theme(context="paper", style="whitegrid")
        # Anything but a curve over epochs shows each run's last evaluated epoch.
        data = self.rows_for(figure.metrics, figure.where, "all" if figure.x == "epoch" else "last")
        chosen = None
        if figure.select is not None:
            data, chosen = self.select(data, figure.select)
        if figure.kind == "heatmap":
            fig = self.heatmap(data, figure)
        else:
            fig = self.lines(data, figure)
        pdf = self.out / f"figure_{figure.name}.pdf"
        # Fixed metadata so the same records give the same bytes.
        fig.savefig(pdf, metadata={"CreationDate": None, "ModDate": None}, bbox_inches="tight")
        plt.close(fig)
        tex = self._write(f"figure_{figure.name}.tex", self.env.get_template("figure.tex.j2").render(
            figure=figure, path=f"generated/{self.study.name}/{pdf.name}", facts=facts, study=self.study.name,
            chosen=chosen))
        return [pdf, tex]

    def select(self, data: pd.DataFrame, select: spec.SelectSpec) -> tuple[pd.DataFrame, str]:
        """Keep the best cell over `select.axes` by `select.by` (mean over seeds, last epoch) and the runs
        without those axes; returns the kept rows and the chosen cell in words."""
        scores = self.rows_for([select.by], {}, "last").dropna(subset=select.axes)
        if scores.empty:
            raise HarnessError(f"{self.study.name}: no run has {select.by} to choose the best "
                               f"{', '.join(select.axes)} by")
        means = scores.groupby(select.axes)["value"].mean()
        best = means.idxmax() if len(select.axes) > 1 else (means.idxmax(),)
        keep = data[select.axes[0]].isna()
        match = pd.Series(True, index=data.index)
        for axis, value in zip(select.axes, best):
            match &= data[axis] == value
        words = ", ".join(f"{self.label(a)} = {_label(v)}" for a, v in zip(select.axes, best))
        return data[keep | match], f"{words} ({select.by} {means.max() * 100:.2f})"

    def heatmap(self, data: pd.DataFrame, figure: spec.FigureSpec) -> Any:
        import matplotlib.pyplot as plt
        import seaborn as sns

        summary = aggregate.summarise(data.dropna(subset=[figure.x, figure.y]), [figure.y, figure.x])
        grid = summary.pivot(index=figure.y, columns=figure.x, values="mean")
        grid = grid.reindex(index=self._order(figure.y, list(grid.index)),
                            columns=self._order(figure.x, list(grid.columns))) * 100.0
        fig, ax = plt.subplots(figsize=(1.0 + 0.9 * grid.shape[1], 0.8 + 0.6 * grid.shape[0]))
        sns.heatmap(grid, annot=True, fmt=".1f", cmap="viridis", cbar_kws={"label": f"{figure.metrics[0]} (%)"},
                    ax=ax)
        ax.set_xlabel(self.label(figure.x))
        ax.set_ylabel(self.label(figure.y))
        return fig

    def lines(self, data: pd.DataFrame, figure: spec.FigureSpec) -> Any:
        import matplotlib
        import seaborn as sns

        data = data.copy()
        x_order = self._order(figure.x, data[figure.x].dropna().tolist())
        numeric_x = pd.api.types.is_numeric_dtype(data[figure.x])
        if not numeric_x:  # categorical x (e.g. "20-80"): plot at positions in the declared order
            position = {label: i for i, label in enumerate(x_order)}
            data[figure.x] = data[figure.x].map(position)
        by_metric = figure.hue == "metric"
        hue_order = figure.metrics if by_metric else self._order(figure.hue, data[figure.hue].tolist())
        grid = sns.relplot(data=data, x=figure.x, y="value", hue=figure.hue, hue_order=hue_order,
                           col=None if by_metric else "metric", col_order=None if by_metric else figure.metrics,
                           kind="line", errorbar="sd", marker="o", facet_kws={"sharey": False},
                           height=2.4 if not by_metric else 3.0, aspect=1.1 if not by_metric else 1.5)
        if not by_metric:
            grid.set_titles("{col_name}")
        grid.set_axis_labels(self.label(figure.x), "")
        for ax in grid.axes.flat:
            if not numeric_x:
                ax.set_xticks(range(len(x_order)), [str(v) for v in x_order])
            elif figure.x == "epoch":
                ax.set_xscale("log")
                ax.set_xticks(sorted(data["epoch"].unique()))
                ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
                ax.minorticks_off()
        return grid.figure

    def reference(self, ref: spec.ReferenceSpec, facts: dict[str, Any]) -> Path:
        original = pd.read_csv(self.study.path.parent / ref.file)
        for column, value in ref.their_where.items():  # their rows in the setting compared (backbone, dataset)
            original = original[original[column].astype(str) == str(value)]
        original = original.assign(row=original[ref.rows].map(lambda v: ref.row_map.get(v, v)))
        theirs_scale = 1.0 if ref.percent_in_file else 100.0
        row_axis = ref.axis
        if ref.columns is not None:  # one metric, their epochs beside ours
            ours = aggregate.summarise(self.rows_for([ref.metric], ref.where).dropna(subset=[row_axis]),
                                       [row_axis, "epoch"])
            their_cols = sorted(original[ref.columns].unique())
            our_cols = sorted(ours["epoch"].unique())
        else:  # several metrics at the last epoch
            metrics = [c.ours for c in ref.values]
            ours = aggregate.summarise(self.rows_for(metrics, ref.where, "last").dropna(subset=[row_axis]),
                                       [row_axis, "metric"])
            their_cols = [c.label for c in ref.values if c.theirs is not None]
            our_cols = [c.label for c in ref.values]
        # Their rows and ours interleaved by label ("10-90" ... "100-0"), so a shared setting shares a line.
        rows = list(dict.fromkeys(list(ours[row_axis]) + list(original["row"])))
        rows = sorted(rows, key=_natural) if all(_label(r)[:1].isdigit() for r in rows) else self._order(row_axis, rows)
        body = []
        for row in rows:
            theirs_row = original[original["row"] == row]
            mine = ours[ours[row_axis] == row]
            if ref.columns is not None:
                series = theirs_row.set_index(ref.columns)[ref.value_column]
                theirs = [series.get(c) for c in their_cols]
                mine = mine.set_index("epoch")
                ours_cells = [mine.loc[c] if c in mine.index else None for c in our_cols]
            else:
                theirs = [theirs_row[c.theirs].iloc[0] if len(theirs_row) else None
                          for c in ref.values if c.theirs is not None]
                mine = mine.set_index("metric")
                ours_cells = [mine.loc[c.ours] if c.ours in mine.index else None for c in ref.values]
            body.append({
                "label": row,
                "theirs": [f"{v * theirs_scale:.2f}" if v is not None and pd.notna(v) else "--" for v in theirs],
                "ours": [_cell(c["mean"], c["std"], int(c["n"]), 100.0) if c is not None else "--"
                         for c in ours_cells],
            })
        return self._write("reference.tex", self.env.get_template("reference.tex.j2").render(
            ref=ref, their_cols=their_cols, our_cols=our_cols, body=body, facts=facts, study=self.study.name,
            row_label=self.label(row_axis), by_epoch=ref.columns is not None))


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
