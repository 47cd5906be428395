"""Pre-registration: a profile's claims, seeds and analysis frozen in a committed file before any run of that
profile exists, so that what its records will be asked cannot be chosen after they are seen.

`harness preregister --profile full` writes experiments/preregistered/<profile>.yaml: the `frozen` part (every
study's seeds and every claim's definition as that profile resolves it: kind, cells, metric, epoch rule, axis,
expectation, margin; the level and the family rule) and the `power` part (how the seeds were chosen: each claim
whose original reported a difference, the pilot profile's spread of that claim's paired differences, and the seeds
a paired t-test needs to find the original's difference with the power asked, at the family's first Holm level).
Every record of a pre-registered profile carries the file's sha256 in its provenance; `harness check` on that
profile fails, one line each, when a claim or a study's seeds differ from the frozen part, or when a record
carries another hash.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from harness.errors import HarnessError

from harness.spec import PREREGISTERED as FOLDER  # noqa: F401 (beside the study files)
from harness.spec import preregistration_path as path_for
from harness.spec import preregistration_sha256 as sha256_of

POWER = 0.8
MINIMUM_SEEDS = 5
# The code that computes the claims and their tests: frozen by hash, so that the analysis cannot change after the
# pre-registration without its check saying so.
ANALYSIS_CODE = ("harness/claims.py", "harness/aggregate.py")
REPO = Path(__file__).resolve().parent.parent


def read(experiments: Path, profile: str) -> dict[str, Any] | None:
    path = path_for(experiments, profile)
    if not path.is_file():
        return None
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise HarnessError(f"{path}: not YAML ({' '.join(str(exc).split())[:120]}); restore it from git") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("frozen"), dict):
        raise HarnessError(f"{path}: no `frozen` mapping; restore it from git, or write it again with "
                           f"`harness preregister --profile {profile}` before any run of that profile")
    return doc


def tests_in(claim: Any) -> int:
    """How many tests a claim adds to the family (harness.claims.tests_of): none for a question or a claim
    declared not testable, two for an equivalence or a control, one otherwise."""
    if claim.kind == "question" or claim.a is None:
        return 0
    return 2 if claim.expect in ("same", "not higher") else 1


def claim_frozen(claim: Any, study: Any) -> dict[str, Any]:
    """A claim's definition as this profile computes it: its `where` resolved (a label named by its place in the
    profile's order is that label), everything else as declared."""
    from harness.kinds.shared import where_for

    def cell(c: Any) -> dict[str, Any] | None:
        if c is None:
            return None
        return {"where": {k: v for k, v in where_for(c, study.profile, study.axes).items()},
                "metric": c.metric, "epoch": c.epoch,
                "select": None if c.select is None else c.select.model_dump(mode="json")}

    return {"kind": claim.kind, "statement": " ".join(claim.statement.split()), "a": cell(claim.a),
            "b": cell(claim.b), "per": claim.per, "expect": claim.expect, "margin": claim.margin,
            "on_original": study.spec.profiles[study.profile].on_original(claim.name)}


def frozen(profile: str, experiments: Path | None = None) -> dict[str, Any]:
    """The part of a pre-registration that `check` compares: the analysis, and per study its seeds and claims."""
    from harness import claims, spec

    studies = {}
    for name in spec.list_studies(experiments):
        study = spec.load(name, profile, experiments, components=False)
        studies[name] = {"seeds": sorted({run.seed for run in study.runs}),
                         "claims": {c.name: claim_frozen(c, study) for c in study.spec.report.claims}}
    return {"alpha": claims.ALPHA,
            "code": {name: hashlib.sha256((REPO / name).read_bytes()).hexdigest() for name in ANALYSIS_CODE},
            "family": "every test of every claim of the profile, Holm-adjusted together",
            "rule": "a difference a - b paired by seed; two-sided paired t-test; for expect same, equivalence within "
                    "the margin by two one-sided t-tests (TOST); one one-sided test for expect not higher; a claim with "
                    "one difference per label needs every label",
            "studies": studies}


def seeds_needed(effect: float, sd: float, alpha: float, power: float = POWER) -> int | None:
    """The seeds a two-sided paired t-test at level `alpha` needs to find a mean difference `effect` with
    `power`, when seed-to-seed differences spread with standard deviation `sd` (noncentral t); None when no
    number up to 1,000 does."""
    from scipy import stats

    if sd <= 0:
        return 2
    for n in range(2, 1001):
        df = n - 1
        crit = stats.t.ppf(1 - alpha / 2, df)
        nc = abs(effect) / sd * np.sqrt(n)
        # The other tail is negligible, and scipy returns NaN for it far out: it counts as 0 then.
        achieved = stats.nct.sf(crit, df, nc) + np.nan_to_num(stats.nct.cdf(-crit, df, nc))
        if achieved >= power:
            return n
    return None


def power_plan(profile: str, pilot: str, results: Path, experiments: Path | None = None) -> dict[str, Any]:
    """Per study, the claims whose original reported a difference: the pilot's spread of their paired
    differences (in points), the seeds needed at the family's first Holm level, and the seeds chosen (at least
    MINIMUM_SEEDS, and enough for every such claim of the study)."""
    from scipy import stats

    from harness import aggregate, claims, spec, store
    from harness.plan import records_of

    family = sum(tests_in(c) for name in spec.list_studies(experiments)
                 for c in spec.load(name, profile, experiments, components=False).spec.report.claims)
    alpha = claims.ALPHA / max(family, 1)
    plan: dict[str, Any] = {"pilot": pilot, "power": POWER, "family_tests": family,
                            "alpha_per_test": round(alpha, 6), "minimum_seeds": MINIMUM_SEEDS, "studies": {}}
    for name in spec.list_studies(experiments):
        study = spec.load(name, pilot, experiments, components=False)
        frame = aggregate.long_frame(records_of(study, store.scan(results, name, pilot)))
        rows, needed = {}, [MINIMUM_SEEDS]
        for claim in study.spec.report.claims:
            if claim.reported is None:
                continue
            try:
                result = claims.compute(claim, frame, pilot, study.axes)
            except HarnessError as exc:
                raise HarnessError(f"{name}: claim '{claim.name}': the pilot profile {pilot} cannot give its spread "
                                   f"({exc}); run it first") from None
            diffs = result.parts[0].differences * 100.0
            sd = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else float("nan")
            n = seeds_needed(claim.reported.effect, sd, alpha) if np.isfinite(sd) else None
            # The pilot's s.d. comes from a handful of seeds: the seeds needed if the truth were at its 80 % upper
            # confidence bound say how much the choice rests on it.
            upper = sd * np.sqrt((len(diffs) - 1) / stats.chi2.ppf(0.2, len(diffs) - 1)) if len(diffs) > 1 else sd
            rows[claim.name] = {"original_effect": claim.reported.effect, "pilot_sd": round(sd, 4),
                                "pilot_seeds": len(diffs), "seeds_needed": n,
                                "pilot_effect": round(float(np.mean(diffs)), 4),
                                "seeds_needed_at_sd_upper_80": seeds_needed(claim.reported.effect, upper, alpha)
                                if np.isfinite(upper) else None}
            needed.append(n if n is not None else 1000)
        plan["studies"][name] = {"claims": rows, "seeds": max(needed)}
    return plan


def write(profile: str, pilot: str, results: Path, experiments: Path, force: bool = False) -> Path:
    """The pre-registration file of `profile`, refused once any record of that profile exists (it must come
    first) or where one exists already (unless `force`)."""
    from harness import files, spec, store

    recorded = [name for name in spec.list_studies(experiments)
                if (scan := store.scan(results, name, profile)).ok or scan.failed or scan.corrupt]
    if recorded:
        raise HarnessError(f"profile {profile} already has records ({', '.join(recorded)} in {results}): a "
                           "pre-registration must come before any run of the profile it freezes")
    target = path_for(experiments, profile)
    if target.exists() and not force:
        raise HarnessError(f"{target} exists; a pre-registration is written once (--force replaces it, which "
                           "git will show)")
    doc = {"profile": profile, "frozen": frozen(profile, experiments),
           "power": power_plan(profile, pilot, results, experiments)}
    header = (f"# Pre-registration of profile {profile}, written by `harness preregister --profile {profile}` before "
              "any run of it.\n# `frozen` is what `harness check` compares with the study files; `power` records how "
              "the seeds were chosen.\n# Every record of this profile carries this file's sha256.\n")
    target.parent.mkdir(parents=True, exist_ok=True)
    files.atomic_write(target, header + yaml.safe_dump(doc, sort_keys=True, width=100, allow_unicode=False))
    return target


def problems(studies: Sequence[str], profile: str, results: Path, experiments: Path | None = None) -> list[str]:
    """What breaks a profile's pre-registration, one line each: a claim or a study's seeds that differ from the
    frozen part, a claim added or gone, a record carrying another hash (or none). Empty without one."""
    from harness import spec, store

    folder = spec.EXPERIMENTS_DIR if experiments is None else Path(experiments)
    doc = read(folder, profile)
    if doc is None:
        return []
    path, digest = path_for(folder, profile), sha256_of(folder, profile)
    then, now = doc["frozen"], frozen(profile, experiments)
    found = [f"{path}: the analysis ({key}) differs from the pre-registration"
             for key in ("alpha", "family", "rule") if then.get(key) != now.get(key)]
    for name, digest_now in now["code"].items():
        if (then.get("code") or {}).get(name) != digest_now:
            found.append(f"{name} changed since the pre-registration {path} (the code that computes the claims); "
                         f"before any run of profile {profile}, write it again: harness preregister --profile "
                         f"{profile} --force")
    for name in studies:
        was, is_ = (then.get("studies") or {}).get(name), now["studies"].get(name)
        if was is None:
            found.append(f"{name}: not in the pre-registration {path}; a study added after it is not pre-registered")
            continue
        if was.get("seeds") != is_["seeds"]:
            found.append(f"{name}: seeds {is_['seeds']} differ from the pre-registered {was.get('seeds')} ({path})")
        for claim in dict.fromkeys([*(was.get("claims") or {}), *is_["claims"]]):
            before, after = (was.get("claims") or {}).get(claim), is_["claims"].get(claim)
            if before is None:
                found.append(f"{name}: claim '{claim}' is not in the pre-registration {path}")
            elif after is None:
                found.append(f"{name}: pre-registered claim '{claim}' is gone from the study file ({path})")
            elif before != after:
                what = ", ".join(k for k in after if before.get(k) != after[k])
                found.append(f"{name}: claim '{claim}' differs from the pre-registration ({what}; {path})")
        scan = store.scan(results, name, profile)
        for record in [*scan.ok.values(), *scan.failed.values()]:
            carried = record.provenance.preregistration
            if carried != digest:
                found.append(f"{name}: record {record.run_id} carries pre-registration {carried or 'none'}, not "
                             f"{digest[:12]}... of {path}; it was run under another analysis: rerun it")
    return found


def add_parser(sub: Any) -> None:
    """`harness preregister --profile P`: its arguments (argparse's subparsers, from harness.cli)."""
    from harness import spec, store

    cmd = sub.add_parser("preregister", help="freeze a profile's claims, seeds and analysis before any run of it "
                                             "(experiments/preregistered/<profile>.yaml)")
    cmd.add_argument("--profile", default="full", help=f"the profile to freeze, one of {', '.join(spec.PROFILES)} "
                                                       "(default: full)")
    cmd.add_argument("--pilot", default="quick", help="the profile whose records give each claim's spread for the "
                                                      "power calculation (default: quick)")
    cmd.add_argument("--results", type=Path, default=store.RESULTS_DIR, help="results folder (default: results)")
    cmd.add_argument("--force", action="store_true", help="replace an existing pre-registration (before any run)")
    cmd.set_defaults(func=command)


def command(args: Any) -> int:
    from harness import spec

    if args.profile not in spec.PROFILES or args.pilot not in spec.PROFILES:
        wrong = args.profile if args.profile not in spec.PROFILES else args.pilot
        raise HarnessError(f"unknown profile '{wrong}'; known: {', '.join(spec.PROFILES)}")
    if args.pilot == args.profile:
        raise HarnessError(f"--pilot {args.pilot}: the pilot is another profile, whose records already exist")
    target = write(args.profile, args.pilot, args.results, spec.EXPERIMENTS_DIR, args.force)
    doc = read(spec.EXPERIMENTS_DIR, args.profile) or {}
    seeds = {name: len(s["seeds"]) for name, s in doc["frozen"]["studies"].items()}
    wanted = {name: s["seeds"] for name, s in doc["power"]["studies"].items()}
    print(f"wrote {target} (sha256 {sha256_of(spec.EXPERIMENTS_DIR, args.profile)}): "
          + ", ".join(f"{name} {n} seeds" for name, n in seeds.items()))
    short = [name for name, n in seeds.items() if n < wanted[name]]
    if short:
        print(f"note: the power calculation asks for more seeds than {', '.join(short)} declare(s) "
              f"({', '.join(f'{n}: {wanted[n]}' for n in short)}); set profiles.{args.profile}.seeds and write it "
              "again with --force", file=sys.stderr)
    return 0


def check(studies: Sequence[str], profile: str, results: Path, paper: Path) -> Any:
    """`harness check`: every claim recomputed (harness.claims.check_profile), held by the profile's
    pre-registration where it has one."""
    from harness import claims, spec

    registered = read(spec.EXPERIMENTS_DIR, profile) is not None
    where = str(path_for(spec.EXPERIMENTS_DIR, profile)) if registered else None
    return claims.check_profile(studies, profile, results, paper, where,
                                problems(studies, profile, results) if registered else ())
