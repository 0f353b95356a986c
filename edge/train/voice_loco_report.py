"""The leave-one-corpus-out result as Markdown tables and a bar plot (from ``voice_loco table``'s JSON)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.train.voice_corpora import LANGUAGE

GAIN_CONDS = ("gain-20", "gain+10")
PAGE_INTRO = ("Each row: the head trained on the other corpora (clean + augmented copies), encoder taps and C "
              "chosen by a nested leave-one-corpus-out inside the training corpora (a head on two of them scored on"
              " the third, mean over the three; never on the left-out corpus); the eGeMAPS + logistic-regression "
              "baseline trained on the same clips (clean, gain-normalised), same weights per corpus and class. "
              "Clips without a voice reading (no speech found) count as chance. Babble noise: a training copy's "
              "talkers come from its own corpus, a test clip's from the other corpora, so a left-out corpus's "
              "voices are in neither its fold's training noise nor its own test noise. Within-corpus folds choose "
              "taps and C on each fold's validation speakers, never its test speakers.")


def _f(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def markdown(res: dict[str, Any]) -> str:
    """Headline table (clean), kiosk conditions, gain invariance and per-class 4-way recall, ours vs eGeMAPS."""
    rows = res["corpora"]
    out = ["| left-out corpus (language) | clips | ours: agitated AUC | eGeMAPS: AUC | ours: 4-class UA | "
           "eGeMAPS: UA | ours: 7-class macro-F1 | head input, C |", "|---|---|---|---|---|---|---|---|"]
    for k, r in rows.items():
        o, b = r["ours"]["clean"], r["egemaps"]["clean"]
        out.append(f"| {k} ({LANGUAGE.get(k, '?')}) | {o['n']} | {_f(o['agitated_auc'])} | "
                   f"{_f(b['agitated_auc'])} | {_f(o['ua4'])} | {_f(b['ua4'])} | {_f(o['macro_f1'])} | "
                   f"taps {'+'.join(map(str, r['taps']))}, {r['C']} |")
    conds = [c for c in res["conditions"] if c != "clean"]
    if conds:
        out += ["", "Agitated AUC (4-class UA) under kiosk conditions, ours / eGeMAPS:", "",
                "| left-out corpus | " + " | ".join(conds) + " |", "|---|" + "---|" * len(conds)]
        for k, r in rows.items():
            cells = [f"{_f(r['ours'][c]['agitated_auc'])} ({_f(r['ours'][c]['ua4'])}) / "
                     f"{_f(r['egemaps'][c]['agitated_auc']) if c in r['egemaps'] else '–'}" for c in conds]
            out.append(f"| {k} | " + " | ".join(cells) + " |")
    gains = [c for c in GAIN_CONDS if c in res["conditions"]]
    if gains:
        out += ["", "AUC change against clean when every test clip's gain is shifted (clipping allowed):", "",
                "| left-out corpus | " + " | ".join(f"ours {g}" for g in gains) + " | "
                + " | ".join(f"eGeMAPS {g}" for g in gains) + " |", "|---|" + "---|" * 2 * len(gains)]
        for k, r in rows.items():
            d = [r[m][g]["agitated_auc"] - r[m]["clean"]["agitated_auc"] if g in r[m] else None
                 for m in ("ours", "egemaps") for g in gains]
            out.append(f"| {k} | " + " | ".join("–" if x is None else f"{x:+.3f}" for x in d) + " |")
    if res.get("within"):
        out += ["", "Within each corpus, 4 speaker folds (head on that corpus' other speakers): the folds' test clips "
                "scored together ± the std over folds:", "",
                "| corpus | agitated AUC | 4-class UA | 7-class accuracy | macro-F1 |", "|---|---|---|---|---|"]
        for k, r in res["within"].items():
            m, s = r.get("pooled", r["mean"]), r["std"]
            if "accuracy_8" in m:
                out.append(f"| {k} (8 native classes, calm its own) | – | – | {m['accuracy_8']:.3f} ± "
                           f"{s['accuracy_8']:.3f} | – |")
            else:
                out.append(f"| {k} | " + " | ".join(f"{m[x]:.3f} ± {s[x]:.3f}" for x in
                                                    ("agitated_auc", "ua4", "accuracy", "macro_f1")) + " |")
    out += ["", "4-class recall (neutral / happy / sad / angry), ours:", ""]
    for k, r in rows.items():
        rec = r["ours"]["clean"]["recall4"]
        out.append(f"- {k}: " + ", ".join(f"{c} {v:.2f}" for c, v in rec.items()))
    return "\n".join(out) + "\n"


def plot(res: dict[str, Any], path: Path) -> None:
    """Grouped bars: agitated AUC and 4-class UA per left-out corpus, ours vs eGeMAPS (clean)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(res["corpora"])
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, key, title in ((axes[0], "agitated_auc", "agitated-vs-rest AUC"), (axes[1], "ua4", "4-class UA")):
        x = np.arange(len(names))
        for j, (model, colour) in enumerate((("ours", "tab:blue"), ("egemaps", "tab:grey"))):
            vals = [res["corpora"][n][model]["clean"][key] for n in names]
            ax.bar(x + (j - 0.5) * 0.38, vals, 0.38, label="ours (Whisper-tiny enc. + head)" if j == 0 else
                   "eGeMAPS + LR", color=colour)
        ax.axhline(0.8 if key == "agitated_auc" else 0.55, color="k", lw=0.8, ls="--")
        ax.set_xticks(x, names)
        ax.set_ylim(0.25 if key == "ua4" else 0.4, 1.0)
        ax.set_title(f"left-out corpus: {title}", fontsize=9)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
