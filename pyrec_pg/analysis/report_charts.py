"""The evaluation report's charts: PNGs drawn with matplotlib's Agg canvas, no pyplot state."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyrec_pg.analysis.report_data import Bias, Version, is_chosen, short_params
from pyrec_pg.errors import FeatureNotSupported

MODEL = "#2563eb"
MODEL_LIGHT = "#93c5fd"
BASELINE = "#9ca3af"
INK = "#1f2937"
SERIES = ("#2563eb", "#059669", "#d97706", "#db2777")
OVER_TIME = ("ndcg@10", "precision@10", "recall@10", "map@10")
AT_K = ("precision", "recall", "ndcg")
DPI = 144
# an explicit style so charts look the same whatever the user's matplotlibrc says
STYLE: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "axes.edgecolor": "#d1d5db",
    "axes.labelcolor": INK,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.titlecolor": INK,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#e5e7eb",
    "grid.linewidth": 0.8,
    "xtick.color": "#4b5563",
    "ytick.color": "#4b5563",
    "legend.frameon": False,
    "legend.fontsize": 9,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
}


@dataclass(frozen=True)
class Chart:
    file: str
    alt: str
    width: int  # pixels
    height: int


def seconds(s: float) -> str:
    return f"{s:.1f} s" if s >= 1 else f"{s:.2f} s"


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise FeatureNotSupported(
            "the report needs matplotlib, which is not installed",
            hint="pip install 'pyrec_pg[report]' (or pip install matplotlib)",
        ) from e


@contextmanager
def _figure(path: Path, size: tuple[float, float]) -> Iterator[Any]:
    """A Figure on an Agg canvas inside the report style, saved to `path` on exit."""
    from matplotlib import style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with style.context(["default", STYLE]):
        fig = Figure(figsize=size, dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        yield fig
        fig.savefig(path, dpi=DPI, format="png")


def _chart(out_dir: Path, file: str, alt: str) -> Chart:
    """The saved PNG with its size in pixels, read from its IHDR header."""
    with (out_dir / file).open("rb") as f:
        width, height = struct.unpack(">II", f.read(24)[16:24])
    return Chart(file, alt, width, height)


def versions_chart(out_dir: Path, stem: str, versions: list[Version]) -> Chart:
    """Holdout metrics per version (popularity dashed) and training time per version."""
    size = (10.0, 3.6)
    file = f"{stem}-versions.png"
    x = list(range(len(versions)))
    labels = [f"v{v.version}\n{v.created_at:%m-%d %H:%M}" for v in versions]
    with _figure(out_dir / file, size) as fig:
        left, right = fig.subplots(1, 2, width_ratios=[2.6, 1])
        for name, colour in zip(OVER_TIME, SERIES, strict=True):
            pts = [
                (i, v.metrics[name]) for i, v in zip(x, versions, strict=True) if name in v.metrics
            ]
            if pts:
                left.plot(*zip(*pts, strict=True), marker="o", color=colour, lw=2, label=name)
        base = [
            (i, v.baseline["ndcg@10"])
            for i, v in zip(x, versions, strict=True)
            if "ndcg@10" in v.baseline
        ]
        if base:
            left.plot(
                *zip(*base, strict=True),
                ls="--",
                marker=".",
                color=BASELINE,
                label="popularity ndcg@10",
            )
        _mark_active(left, x, versions)
        left.set(title="Holdout metrics per version", ylim=(0, None), xticks=x, xticklabels=labels)
        left.set_xlim(-0.4, len(versions) - 0.6)
        if left.get_legend_handles_labels()[0]:
            left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=5)
        else:  # every kept version was trained with holdout 0
            left.set_ylim(0, 1)
            left.text(
                0.5,
                0.5,
                "no holdout metrics",
                transform=left.transAxes,
                ha="center",
                color="#6b7280",
                fontsize=11,
            )
        colours = [MODEL if v.status == "active" else MODEL_LIGHT for v in versions]
        bars = right.bar(x, [v.training_seconds for v in versions], color=colours, width=0.6)
        right.bar_label(bars, labels=[seconds(v.training_seconds) for v in versions], fontsize=8)
        right.set(
            title="Training time (s)", xticks=x, xticklabels=[f"v{v.version}" for v in versions]
        )
        right.margins(y=0.15)
    return _chart(out_dir, file, "holdout metrics and training time per version")


def _mark_active(ax: Any, x: list[int], versions: list[Version]) -> None:
    for i, v in zip(x, versions, strict=True):
        if v.status == "active":
            ax.axvspan(i - 0.2, i + 0.2, color=MODEL, alpha=0.07, lw=0)
            ax.annotate(
                "active",
                (i, 0.98),
                xycoords=("data", "axes fraction"),
                ha="center",
                va="top",
                fontsize=8,
                color=MODEL,
            )


def at_k_chart(out_dir: Path, stem: str, active: Version) -> Chart | None:
    """precision, recall and ndcg at each k of the active version beside popularity's."""
    model, base = active.at_k(), active.at_k(active.baseline)
    names = [n for n in AT_K if n in model]
    if not names:
        return None
    size = (10.0, 3.2)
    file = f"{stem}-at-k.png"
    with _figure(out_dir / file, size) as fig:
        axes = fig.subplots(1, len(names), sharey=True, squeeze=False)[0]
        for ax, name in zip(axes, names, strict=True):
            ks, vals = list(model[name]), list(model[name].values())
            ax.plot(ks, vals, marker="o", color=MODEL, lw=2.2, label=f"v{active.version}")
            for kk, val in zip(ks, vals, strict=True):
                ax.annotate(
                    f"{val:.3f}",
                    (kk, val),
                    textcoords="offset points",
                    xytext=(0, 7),
                    ha="center",
                    fontsize=8,
                    color=MODEL,
                )
            if name in base:
                ax.plot(
                    list(base[name]),
                    list(base[name].values()),
                    ls="--",
                    marker=".",
                    color=BASELINE,
                    label="popularity",
                )
            ax.set(title=f"{name}@k", xlabel="k", xticks=ks, ylim=(0, 1.0))
        axes[0].legend(loc="upper right")
    return _chart(out_dir, file, "precision, recall and ndcg at k")


def auto_chart(out_dir: Path, stem: str, active: Version) -> Chart | None:
    """auto's candidates by their validation ndcg@10 and precision@10, the chosen one marked."""
    scored = [t for t in active.params.get("trials", []) if "ndcg@10" in t]
    if not scored:
        return None
    scored.sort(key=lambda t: t["ndcg@10"])
    chosen = active.params.get("chosen") or {}
    size = (10.0, 0.9 + 0.55 * len(scored))
    file = f"{stem}-auto.png"
    with _figure(out_dir / file, size) as fig:
        ax = fig.subplots()
        y = list(range(len(scored)))
        h = 0.38
        nd = ax.barh(
            [i + h / 2 for i in y], [t["ndcg@10"] for t in scored], h, color=MODEL, label="ndcg@10"
        )
        pr = ax.barh(
            [i - h / 2 for i in y],
            [t.get("precision@10", 0) for t in scored],
            h,
            color=MODEL_LIGHT,
            label="precision@10",
        )
        ax.bar_label(nd, fmt="%.3f", fontsize=8, padding=3, color=INK)
        ax.bar_label(pr, fmt="%.3f", fontsize=8, padding=3, color="#6b7280")
        labels = [
            f"{'★ ' if is_chosen(t, chosen) else ''}{t['recipe']}"
            f" ({_clip(short_params(t['recipe'], t['params']))})"
            for t in scored
        ]
        ax.set_yticks(y, labels)
        for tick, t in zip(ax.get_yticklabels(), scored, strict=True):
            if is_chosen(t, chosen):
                tick.set_fontweight("bold")
        ax.set(
            title="auto: candidates on the validation split",
            xlim=(0, max(t["ndcg@10"] for t in scored) * 1.2),
        )
        ax.grid(axis="y", visible=False)
        ax.legend(loc="lower right")
    return _chart(out_dir, file, "recipe comparison of auto's candidates")


def _clip(text: str, width: int = 42) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def bias_chart(out_dir: Path, stem: str, bias: Bias) -> Chart:
    """Share of interactions vs share of recommended slots per item-popularity bucket."""
    size = (10.0, 3.4)
    file = f"{stem}-bias.png"
    with _figure(out_dir / file, size) as fig:
        ax = fig.subplots()
        x = list(range(len(bias.buckets)))
        w = 0.38
        inter = ax.bar(
            [i - w / 2 for i in x],
            [b[1] for b in bias.buckets],
            w,
            color=BASELINE,
            label="share of training interactions",
        )
        recs = ax.bar(
            [i + w / 2 for i in x],
            [b[2] for b in bias.buckets],
            w,
            color=MODEL,
            label=f"share of recommended slots (top {bias.k}, {bias.users} users)",
        )
        for bars in (inter, recs):
            ax.bar_label(
                bars, labels=[f"{b.get_height():.0%}" for b in bars], fontsize=8, padding=2
            )
        ax.set_xticks(x, [f"{b[0]} of items" for b in bias.buckets])
        ax.yaxis.set_major_formatter("{x:.0%}")
        ax.set(title="Where recommendations go, by item popularity", ylim=(0, 1.05))
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=2)
    return _chart(out_dir, file, "popularity bias: where interactions and recommendations go")


def draw(
    out_dir: Path, stem: str, versions: list[Version], active: Version, bias: Bias
) -> dict[str, Chart]:
    """All charts that apply, by section name; sections without data get none."""
    charts = {
        "versions": versions_chart(out_dir, stem, versions),
        "at_k": at_k_chart(out_dir, stem, active),
        "auto": auto_chart(out_dir, stem, active),
        "bias": bias_chart(out_dir, stem, bias),
    }
    return {name: c for name, c in charts.items() if c is not None}
