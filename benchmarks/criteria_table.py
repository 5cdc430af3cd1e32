"""Issue 25's criteria, checked per cell, from `benchmarks/recipes.py --jsonl` files.

A cell is a task, K and backend; its values are the means over the seeds measured (the seed count is shown, so a
cell with one seed is visible as such). Criteria (issue 25): `auto >= probe - 0.01` at every K; `auto >= scratch +
0.10` at K <= 10; `auto >= probe + 0.02` at K = 50 (on at least two tasks). The probe is scikit-learn's logistic
regression on the same frozen features with C chosen on validation (`linear_probe`).

    python benchmarks/criteria_table.py benchmarks/results/mobilenetv2_96_*.jsonl
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


def cells(records):
    """`{(backend, size, task, k): {method: [accuracy per seed]}}`, plus what `auto` ran per seed and the cells
    whose `scratch` figure comes from a record with an `epoch_rule` (one measured while the `scratch` recipe kept
    its lowest-validation-loss epoch, before 2026-12-07): a record without one replaces it, in any file order."""
    found, ran, old_rule = {}, {}, {}
    for r in sorted(records, key=lambda r: "epoch_rule" not in r):  # stable: a re-measurement comes later and wins
        key = (r["backend"], r["size"], r["task"], r["k"])
        found.setdefault(key, {}).setdefault(r["method"], {})[r["seed"]] = r["accuracy"]
        old_rule.setdefault(key, {})[r["method"], r["seed"]] = "epoch_rule" in r
        if r["method"] == "auto" and "ran" in r:
            ran.setdefault(key, {})[r["seed"]] = r["ran"]
    return found, ran, {key for key, rules in old_rule.items() if any(rules.values())}


def mark(ok):
    return "" if ok is None else ("yes" if ok else "**no**")


def table(records):
    found, ran, old = cells(records)
    lines = ["| backend | px | task | K | seeds | probe (C on val) | auto | scratch | auto - probe | >= -0.01 | "
             "auto - scratch | >= +0.10 (K <= 10) | >= +0.02 (K = 50) | auto ran |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key in sorted(found):
        backend, size, task, k = key
        methods = found[key]
        mean = {m: float(np.mean(list(v.values()))) for m, v in methods.items()}
        per_method = {m: ",".join(map(str, sorted(v))) for m, v in methods.items() if m != "linear_probe_c1"}
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
                     f"{fmt(auto)} | {fmt(scratch)}{OLD_RULE if key in old else ''} | {sgn(d_probe)} | {mark(crit1)} | "
                     f"{sgn(d_scratch)} | {mark(crit2)} | {mark(crit3)} | {what} |")
    if old:
        lines.append(f"\n{OLD_RULE} measured while the `scratch` recipe kept its lowest-validation-loss epoch "
                     "(records with an `epoch_rule`), not yet re-measured under the best-validation-accuracy rule.")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("jsonl", nargs="+", help="files written by benchmarks/recipes.py --jsonl")
    args = parser.parse_args(argv)
    print(table(load(args.jsonl)))


if __name__ == "__main__":
    main()
