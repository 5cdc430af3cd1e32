"""Issue 25's criteria, checked per cell, from `benchmarks/recipes.py --jsonl` files.

A cell is a task, K and backend; its values are the means over the seeds measured (the seed count is shown, so a
cell with one seed is visible as such). Criteria (issue 25): `auto >= probe - 0.01` at every K; `auto >= scratch +
0.10` at K <= 10; `auto >= probe + 0.02` at K = 50 (on at least two tasks). The probe is scikit-learn's logistic
regression on the same frozen features with C chosen on validation (`linear_probe`).

    python benchmarks/criteria_table.py benchmarks/results/mobilenetv2_96_*.jsonl
    python benchmarks/criteria_table.py --versus lp_ft benchmarks/results/*.jsonl   # another recipe against `auto`
"""

import argparse
import json

import numpy as np


def load(paths):
    records = []
    for path in paths:
        with open(path) as f:
            records += [json.loads(line) for line in f if line.strip()]
    return records


OLD_RULE = "†"  # the cell's scratch figure was measured under a superseded best-epoch rule
FIXED_ORDER = "‡"  # the cell's figure was trained, on TensorFlow, on one batch order repeated every epoch
SUPERSEDED = {"epoch_rule": OLD_RULE, "epoch_order": FIXED_ORDER}  # a record's key -> the cell's mark
CRITERIA_METHODS = ("linear_probe", "auto", "scratch")


def cells(records):
    """`{(backend, size, task, k): {method: [accuracy per seed]}}`, plus what `auto` ran per seed and
    `{(key, method): marks}` for the figures that come from superseded records: an `epoch_rule` (measured while
    the `scratch` recipe kept its lowest-validation-loss epoch, before 2026-12-07) or an `epoch_order` (trained on
    TensorFlow while a seeded run on arrays repeated one batch order every epoch, before 2026-12-07's fix). A record
    with fewer of those keys replaces one with more, in any file order."""
    found, ran, tags = {}, {}, {}
    superseded = lambda r: sum(key in r for key in SUPERSEDED)  # noqa: E731
    for r in sorted(records, key=superseded, reverse=True):  # stable: a re-measurement comes later and wins
        key = (r["backend"], r["size"], r["task"], r["k"])
        found.setdefault(key, {}).setdefault(r["method"], {})[r["seed"]] = r["accuracy"]
        tags.setdefault((key, r["method"]), {})[r["seed"]] = "".join(m for k, m in SUPERSEDED.items() if k in r)
        if r["method"] == "auto" and "ran" in r:
            ran.setdefault(key, {})[r["seed"]] = r["ran"]
    marks = {cell: "".join(m for m in SUPERSEDED.values() if any(m in t for t in seeds.values()))
             for cell, seeds in tags.items()}
    return found, ran, {cell: m for cell, m in marks.items() if m}


def mark(ok):
    return "" if ok is None else ("yes" if ok else "**no**")


def table(records):
    found, ran, marks = cells(records)
    lines = ["| backend | px | task | K | seeds | probe (C on val) | auto | scratch | auto - probe | >= -0.01 | "
             "auto - scratch | >= +0.10 (K <= 10) | >= +0.02 (K = 50) | auto ran |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key in sorted(found):
        backend, size, task, k = key
        methods = found[key]
        mean = {m: float(np.mean(list(v.values()))) for m, v in methods.items()}
        per_method = {m: ",".join(map(str, sorted(v))) for m, v in methods.items() if m in CRITERIA_METHODS}
        seeds = (next(iter(per_method.values())) if len(set(per_method.values())) == 1
                 else "; ".join(f"{m} {s}" for m, s in per_method.items()))  # a cell missing a seed shows it
        probe, auto, scratch = (mean.get(m) for m in ("linear_probe", "auto", "scratch"))
        d_probe = auto - probe if auto is not None and probe is not None else None
        d_scratch = auto - scratch if auto is not None and scratch is not None else None
        crit1 = None if d_probe is None else d_probe >= -0.01 - 1e-9
        crit2 = None if d_scratch is None or k > 10 else d_scratch >= 0.10 - 1e-9
        crit3 = None if d_probe is None or k != 50 else d_probe >= 0.02 - 1e-9
        what = "; ".join(sorted(set(ran.get(key, {}).values())))
        fmt = lambda v: "" if v is None else f"{v:.3f}"  # noqa: E731
        sgn = lambda v: "" if v is None else f"{v:+.3f}"  # noqa: E731
        lines.append(f"| {backend} | {size} | {task} | {k} | {seeds} | {fmt(probe)} | "
                     f"{fmt(auto)}{marks.get((key, 'auto'), '')} | {fmt(scratch)}{marks.get((key, 'scratch'), '')} | "
                     f"{sgn(d_probe)} | {mark(crit1)} | "
                     f"{sgn(d_scratch)} | {mark(crit2)} | {mark(crit3)} | {what} |")
    shown = set("".join(marks.values()))
    if OLD_RULE in shown:
        lines.append(f"\n{OLD_RULE} measured while the `scratch` recipe kept its lowest-validation-loss epoch "
                     "(records with an `epoch_rule`), not yet re-measured under the best-validation-accuracy rule.")
    if FIXED_ORDER in shown:
        lines.append(f"\n{FIXED_ORDER} trained on TensorFlow while a seeded run on arrays repeated one batch order "
                     "every epoch (records with an `epoch_order`), not yet re-measured with a new order each epoch.")
    return "\n".join(lines)


def versus(records, method):
    """Another recipe (`method`, e.g. `lp_ft` below 20 a class) against `auto` on the seeds both ran, per cell:
    the means, the difference, in how many seeds the recipe kept its fine-tuning (its `ran` line), and its margin
    over `scratch` (the mean of every `scratch` seed of the cell)."""
    found, _, _ = cells(records)
    kept = {}
    for r in records:
        if r["method"] == method and "ran" in r:
            kept.setdefault((r["backend"], r["size"], r["task"], r["k"]), {})[r["seed"]] = (
                "fine_tune" in r["ran"] and "reverted" not in r["ran"])
    lines = [f"| backend | px | task | K | seeds | probe (C on val) | auto | {method} | {method} - auto | "
             f"fine-tuning kept | scratch | {method} - scratch |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key in sorted(found):
        methods = found[key]
        seeds = sorted(set(methods.get(method, {})) & set(methods.get("auto", {})))
        if not seeds:
            continue
        mean = {m: float(np.mean([methods[m][s] for s in seeds])) for m in (method, "auto")}
        probe = methods.get("linear_probe", {})
        probe = f"{np.mean([probe[s] for s in seeds]):.3f}" if all(s in probe for s in seeds) else ""
        n_kept = sum(kept.get(key, {}).get(s, False) for s in seeds)
        scratch = methods.get("scratch", {})  # all of its seeds: a baseline, not paired with the recipe's
        scratch = float(np.mean(list(scratch.values()))) if scratch else None
        lines.append(f"| {' | '.join(map(str, key))} | {','.join(map(str, seeds))} | {probe} | {mean['auto']:.3f} | "
                     f"{mean[method]:.3f} | {mean[method] - mean['auto']:+.3f} | {n_kept} of {len(seeds)} | "
                     + ("|" if scratch is None else f"{scratch:.3f} | {mean[method] - scratch:+.3f} |"))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("jsonl", nargs="+", help="files written by benchmarks/recipes.py --jsonl")
    parser.add_argument("--versus", metavar="RECIPE", help="compare this recipe with `auto` instead of the criteria")
    args = parser.parse_args(argv)
    records = load(args.jsonl)
    print(versus(records, args.versus) if args.versus else table(records))


if __name__ == "__main__":
    main()
