"""Speaker k-fold summary of the voice CNN from the fold runs' metrics files.

``python -m edge.train.voice_folds [--models models] [--calm] [--swa] [--manifest CSV --folds K]`` reads
``models/work/folds/foldK[-calm][-swa]/voice_emotion.metrics.json`` (other corpora: ``emodb-5x-foldK/``), written by
``python -m edge.train.voice --fold K [--calm] [--swa N]``; the 7-class fold 3 is the shipped split, so
``models/voice_emotion.metrics.json`` stands in when that fold was not run separately. Prints a Markdown table per
fold with the mean ± sample standard deviation over the folds found.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

COLUMNS = (("accuracy", "acc"), ("macro_f1", "macro-F1"), ("agitated_auc", "agitated AUC"))


def fold_metrics(models: Path, calm: bool, k: int = 4, manifest: Path | None = None,
                 swa: bool = False) -> list[tuple[int, dict[str, Any]]]:
    """(fold, metrics) for every fold whose metrics file exists (``manifest``: runs on another corpus)."""
    from edge.train.voice_data import fold_dir

    out = []
    for fold in range(k):
        path = models / "work" / "folds" / fold_dir(manifest, fold, k, calm, swa) / "voice_emotion.metrics.json"
        if not path.is_file() and fold == k - 1 and not (calm or swa) and manifest is None and k == 4:
            path = models / "voice_emotion.metrics.json"
        if path.is_file():
            out.append((fold, json.loads(path.read_text())))
    return out


def _split(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Results keyed by role: held-out product classes, held-out native classes, EmoDB."""
    roles: dict[str, dict[str, Any]] = {}
    for name, res in results.items():
        role = "emodb" if "cross-corpus" in name else ("native" if "native" in name else "product")
        roles[role] = res
    return roles


def table(folds: list[tuple[int, dict[str, Any]]], corpus: str = "RAVDESS") -> str:
    """Markdown: one row per fold, then mean ± sample std."""
    roles = ("native", "product", "emodb")
    head = ({"native": "8 native classes", "product": "7 product classes", "emodb": "EmoDB"} if corpus == "RAVDESS"
            else {"native": "native classes", "product": f"{corpus} held-out", "emodb": "RAVDESS cross-corpus"})
    present = [r for r in roles if any(r in _split(m["results"]) for _, m in folds)]
    cols = [(r, key, f"{head[r]} {label}") for r in present for key, label in COLUMNS
            if not (r == "native" and key == "agitated_auc")]  # the same agitated mass as the product classes
    lines = ["| fold (held-out speakers) | epoch | " + " | ".join(c[2] for c in cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    values: dict[int, list[float]] = {i: [] for i in range(len(cols))}
    for fold, m in folds:
        res = _split(m["results"])
        test = m["speakers"]["test"]
        cells = []
        for i, (role, key, _) in enumerate(cols):
            v = res.get(role, {}).get(key)
            cells.append("–" if v is None else f"{v:.3f}")
            if v is not None:
                values[i].append(float(v))
        lines.append(f"| {fold}: {test[0]}–{test[-1]} | {m['selected_epoch']} | " + " | ".join(cells) + " |")
    agg = [f"{np.mean(v):.3f} ± {np.std(v, ddof=1):.3f}" if len(v) > 1 else "–" for v in values.values()]
    lines.append(f"| mean ± sample std ({len(folds)} folds) | | " + " | ".join(agg) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; 2 when no fold has been run."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=Path("models"))
    ap.add_argument("--calm", action="store_true", help="the --calm (8 native classes) fold runs")
    ap.add_argument("--swa", action="store_true", help="the runs with stochastic weight averaging (--swa N)")
    ap.add_argument("--manifest", type=Path, help="the runs trained on this corpus (e.g. EmoDB's MANIFEST.csv)")
    ap.add_argument("--folds", type=int, default=4, help="number of folds of those runs (EmoDB: 5)")
    args = ap.parse_args(argv)
    folds = fold_metrics(args.models, args.calm, args.folds, args.manifest, args.swa)
    if not folds:
        print(f"error: no fold metrics under {args.models / 'work' / 'folds'} (run python -m edge.train.voice "
              f"--fold K{' --calm' if args.calm else ''}{' --swa N' if args.swa else ''})", file=sys.stderr)
        return 2
    from edge.train.voice_data import corpus_name

    print(table(folds, corpus_name(args.manifest)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
