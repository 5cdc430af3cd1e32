"""The regression / multi-label table of docs/results-mobilenetv2.md from `task_transfer.py`'s JSON lines.

    python benchmarks/task_table.py benchmarks/results/task_mobilenetv2_96_*.jsonl

A cell is a backend, task and training-set size; its values are the means over the seeds measured (listed).
Regression is scored by RMSE (lower is better), multi-label by mAP; "transfer better by" is signed so that a
positive number always means transfer did better.
"""

import argparse
import json
from collections import defaultdict

METRIC = {"regression": ("rmse", -1, "regression (RMSE, lower is better)"), "multilabel": ("map", 1, "multi-label (mAP)")}


def table(records):
    cells = defaultdict(lambda: defaultdict(dict))
    for r in records:
        metric = METRIC[r["task"]][0]
        cells[(r["backend"], r["task"], r["train"])][r["model"]][r["seed"]] = r[metric]
    lines = ["| backend | task (metric) | training images | seeds | transfer (`auto`) | scratch | transfer better by "
             "| transfer beats scratch |", "|---|---|---|---|---|---|---|---|"]
    for (backend, task, train), models in sorted(cells.items(), key=lambda kv: (kv[0][0], METRIC[kv[0][1]][2], kv[0][2])):
        seeds = sorted(set(models["transfer"]) & set(models["scratch"]))
        if not seeds:
            continue
        transfer = sum(models["transfer"][s] for s in seeds) / len(seeds)
        scratch = sum(models["scratch"][s] for s in seeds) / len(seeds)
        sign, name = METRIC[task][1], METRIC[task][2]
        better = sign * (transfer - scratch)
        lines.append(f"| {backend} | {name} | {train} | {','.join(map(str, seeds))} | {transfer:.3f} | {scratch:.3f} "
                     f"| {better:+.3f} | {'yes' if better > 0 else 'no'} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="JSON-lines files written by task_transfer.py --jsonl")
    records = []
    for path in parser.parse_args().paths:
        with open(path) as f:
            records += [json.loads(line) for line in f if line.strip()]
    print(table(records))


if __name__ == "__main__":
    main()
