"""`pyrec report`: a model's evaluation report as one self-contained HTML page with PNG charts."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

import psycopg

from pyrec_pg import __version__
from pyrec_pg.analysis.report_charts import (
    BASELINE,
    MODEL,
    Chart,
    draw,
    require_matplotlib,
    seconds,
)
from pyrec_pg.analysis.report_data import ReportData, Version, collect, is_chosen, short_params
from pyrec_pg.errors import IoError

VERSION_METRICS = ("ndcg@10", "precision@10", "recall@10", "map@10")
METRIC_ORDER = ("precision", "recall", "ndcg", "map", "mrr", "coverage")


def write_report(
    conn: psycopg.Connection[Any],
    model: str,
    out_dir: Path,
    *,
    k: int = 10,
    sample_users: int = 500,
) -> Path:
    """Write `<model>.html` and its PNG charts into `out_dir`; return the HTML's path.

    Popularity bias and coverage come from top-`k` lists that recommend() serves to
    `sample_users` of the active version's users; everything else from the catalog.
    """
    require_matplotlib()
    data = collect(conn, model, k, sample_users)
    # model names are identifiers (create_model checks them), so they are safe file names
    path = out_dir / f"{model}.html"
    partial = path.with_suffix(".html.partial")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        charts = draw(out_dir, model, data.versions, data.active, data.bias)
        partial.write_text(render(data, charts), encoding="utf-8")
        os.replace(partial, path)  # a reader never sees half a page
    except OSError as e:
        raise IoError(
            f"cannot write the report into {out_dir}: {e.strerror or e}",
            hint="pass a directory you can write to",
        ) from e
    return path


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "&ndash;"


def _pct(value: float) -> str:
    return f"{value:.1%}"


def _lift(model: Any, base: Any) -> str:
    if isinstance(model, int | float) and isinstance(base, int | float) and base > 0:
        return f"&times;{model / base:.2f}"
    return "&ndash;"


def _table(
    table_id: str, head: list[str], rows: list[list[str]], text: int = 1, compact: bool = False
) -> str:
    """A table of already-escaped cells; the first `text` columns align left, numbers right."""
    ths = "".join(f'<th class="{"" if i < text else "num"}">{h}</th>' for i, h in enumerate(head))
    trs = "".join(
        "<tr>"
        + "".join(f'<td class="{"" if i < text else "num"}">{c}</td>' for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    css = ' class="compact"' if compact else ""
    return f'<table id="{table_id}"{css}><thead><tr>{ths}</tr></thead><tbody>{trs}</tbody></table>'


def _figure(chart: Chart | None, caption: str) -> str:
    if chart is None:
        return ""
    return (
        f'<figure><img src="{_e(chart.file)}" alt="{_e(chart.alt)}" width="{chart.width}"'
        f' height="{chart.height}"><figcaption>{caption}</figcaption></figure>'
    )


def _section(key: str, title: str, *parts: str) -> str:
    return f'<section id="section-{key}"><h2>{title}</h2>{"".join(parts)}</section>'


def _items(n: int) -> str:
    return f"{n:,} item{'' if n == 1 else 's'}"


def _card(label: str, value: str, note: str) -> str:
    return (
        f'<div class="card"><div class="label">{label}</div><div class="value">{value}</div>'
        f'<div class="note">{note}</div></div>'
    )


def _badge(status: str) -> str:
    return f'<span class="badge {_e(status)}">{_e(status)}</span>'


def _recipe_of(v: Version) -> str:
    chosen = v.params.get("chosen") if v.recipe == "auto" else None
    return f"auto → {chosen['recipe']}" if isinstance(chosen, dict) else v.recipe


def _summary(d: ReportData) -> str:
    m, b, bias = d.active.metrics, d.active.baseline, d.bias
    cards = [
        _card(
            f"{name} (holdout)",
            _num(m.get(name)),
            f"popularity {_num(b.get(name))} · {_lift(m.get(name), b.get(name))}"
            if name in m
            else "no holdout: trained with holdout 0",
        )
        for name in ("ndcg@10", "precision@10")
    ]
    cards += [
        _card(
            "catalog coverage",
            _pct(bias.coverage),
            f"of {_items(bias.catalog)}, in top-{bias.k} lists of {bias.users:,} users",
        ),
        _card(
            "top 1% items' share",
            _pct(bias.top_share_recommended),
            f"of recommended slots; {_pct(bias.top_share_interactions)} of interactions",
        ),
        _card(
            "training",
            seconds(d.active.training_seconds),
            f"{d.active.n_interactions:,} interactions, {d.active.n_users:,} users,"
            f" {d.active.n_items:,} items",
        ),
    ]
    return f'<div class="cards">{"".join(cards)}</div>'


def _versions_section(d: ReportData, charts: dict[str, Chart]) -> str:
    rows = [
        [
            f"v{v.version}",
            _badge(v.status),
            f'<span class="nowrap">{_e(f"{v.created_at:%Y-%m-%d %H:%M}")}</span>',
            f'<span class="nowrap">{_e(_recipe_of(v))}</span>'
            + (f"<small>{_e(v.mode)} of v{v.base_version}</small>" if v.mode != "full" else ""),
            f"{v.n_interactions:,}<small>{v.n_users:,} users &times; {v.n_items:,} items</small>",
            f"{v.training_seconds:.1f}",
            *(_num(v.metrics.get(name)) for name in VERSION_METRICS),
            _num(v.baseline.get("ndcg@10")),
        ]
        for v in d.versions
    ]
    head = ["version", "status", "trained", "recipe", "interactions", "seconds"]
    head += [*VERSION_METRICS, "popularity<br>ndcg@10"]
    return _section(
        "versions",
        "Versions over time",
        _figure(
            charts.get("versions"),
            "Holdout metrics of each kept version (solid) and popularity's ndcg@10 on the same"
            " split (dashed); training time per version.",
        ),
        f'<div class="scroll">{_table("versions", head, rows, text=4)}</div>',
        '<p class="note">Versions trained without a holdout (<code>holdout</code> 0) have no'
        " metrics. pyrec keeps the newest <code>pyrec.keep_versions</code> versions (default 3);"
        " older ones are dropped with their metrics.</p>",
    )


def _metrics_section(d: ReportData, charts: dict[str, Chart]) -> str:
    v = d.active
    model, base = v.at_k(), v.at_k(v.baseline)
    if not model:
        return _section(
            "metrics",
            "Metrics at k",
            f'<p class="empty">Version v{v.version} was trained without a holdout, so it has no'
            f" offline metrics. Train with one: <code>CALL pyrec.train({_e(repr(d.model))},"
            " '{&quot;holdout&quot;: 0.25}')</code>.</p>",
        )
    ks = sorted({k for values in model.values() for k in values})
    rows = []
    for name in sorted(model, key=lambda n: (*METRIC_ORDER, n).index(n)):
        values = model[name]
        cells = []
        for k in ks:
            if k not in values:
                cells.append("")
                continue
            b = base.get(name, {}).get(k)
            cells.append(
                f"<b>{_num(values[k])}</b><small>popularity {_num(b)} ·"
                f" {_lift(values[k], b)}</small>"
            )
        rows.append([_e(name), *cells])
    m = v.metrics
    protocol = (
        f"protocol <code>{_e(m.get('protocol', '?'))}</code>, holdout {_e(m.get('holdout', '?'))},"
        f" seed {_e(m.get('seed', '?'))}, {_e(m.get('users_evaluated', '?'))} users evaluated"
    )
    return _section(
        "metrics",
        f"Metrics at k — active version v{v.version}",
        _figure(
            charts.get("at_k"),
            "The active version (solid) and the popularity baseline (dashed) at each k;"
            f" {protocol}.",
        ),
        _table("metrics", ["metric", *(f"@{k}" for k in ks)], rows, compact=True),
    )


def _auto_section(d: ReportData, charts: dict[str, Chart]) -> str:
    trials = d.active.params.get("trials") if d.active.recipe == "auto" else None
    if not trials:
        return _section(
            "auto",
            "Recipe comparison",
            f'<p class="empty">The active version was trained with recipe'
            f" <code>{_e(d.active.recipe)}</code>. Models with recipe <code>auto</code> try"
            " several candidates on a validation split and keep the best by ndcg@10; their"
            " comparison shows here.</p>",
        )
    chosen = d.active.params.get("chosen") or {}
    rows = []
    for t in sorted(trials, key=lambda t: -float(t.get("ndcg@10", -1.0))):
        name = _e(t.get("recipe", "?"))
        if is_chosen(t, chosen):
            name += ' <span class="badge active">chosen</span>'
        params = _e(short_params(str(t.get("recipe")), t.get("params") or {}))
        if "skipped" in t:
            rows.append([name, params, "&ndash;", "&ndash;", _e(f"skipped: {t['skipped']}")])
        else:
            scores = (t.get("ndcg@10"), t.get("precision@10"))
            rows.append([name, params, *map(_num, scores), _num(t.get("seconds"), 2)])
    head = ["candidate", "parameters (besides defaults)", "ndcg@10", "precision@10", "seconds"]
    share = float(d.active.params.get("validation", 0))
    return _section(
        "auto",
        f"Recipe comparison (auto, v{d.active.version})",
        _figure(
            charts.get("auto"),
            f"Candidates scored on auto's own validation split ({share:.0%} of each user's"
            " training interactions): comparable with each other, not with the holdout metrics"
            " above. ★ marks the candidate the version was trained with.",
        ),
        _table("auto", head, rows, text=2),
    )


def _bias_section(d: ReportData, charts: dict[str, Chart]) -> str:
    bias = d.bias
    rows = [
        [f"{_e(label)}<small>{_items(n)}</small>", _pct(inter), _pct(recs), _lift(recs, inter)]
        for (label, inter, recs), n in zip(bias.buckets, bias.bucket_items, strict=True)
    ]
    most = [
        [
            f"{_e(d.labels[item])}<small>id {_e(item)}</small>" if item in d.labels else _e(item),
            f"{n:,}",
            _pct(n / max(bias.users, 1)),
            f"#{r}",
        ]
        for item, n, r in bias.most_recommended
    ]
    sources = ", ".join(f"{_e(s)} {n / max(bias.slots, 1):.0%}" for s, n in bias.sources.items())
    top = "item" if bias.top_items == 1 else f"{bias.top_items:,} items"
    return _section(
        "bias",
        "Coverage and popularity bias",
        f"<p>recommend() served top-{bias.k} lists to {bias.users:,} of the version's users"
        f" ({bias.slots:,} slots; answered by {sources or 'nothing'}). They cover"
        f" <strong>{_pct(bias.coverage)}</strong> of the {_items(bias.catalog)}, and the most"
        f" popular {top} (the top 1%) take"
        f" <strong>{_pct(bias.top_share_recommended)}</strong> of the slots, against"
        f" {_pct(bias.top_share_interactions)} of the training interactions.</p>",
        _figure(
            charts.get("bias"),
            "Share of training interactions and of recommended slots going to each bucket of"
            " items ranked by popularity.",
        ),
        '<div class="two">',
        _table("bias", ["items by popularity", "interactions", "slots", "ratio"], rows),
        _table(
            "most-recommended",
            ["most recommended item", "slots", "of users", "popularity rank"],
            most,
        ),
        "</div>",
    )


def _runs_section(d: ReportData) -> str:
    rows = [
        [
            f"v{r.version}" if r.version is not None else "&ndash;",
            _badge(r.status),
            _e(f"{r.started_at:%Y-%m-%d %H:%M:%S}"),
            _e(r.message or ""),
            _num(r.seconds, 1),
            str(r.run_id),
        ]
        for r in d.runs
    ]
    head = ["version", "status", "started", "message", "seconds", "run"]
    return _section("runs", "Recent training runs", _table("runs", head, rows, text=4))


DEFINITIONS = [
    ("precision@k", "hits in the top k divided by k, averaged over the evaluated users."),
    ("recall@k", "hits in the top k divided by the user's held-out items."),
    (
        "ndcg@k",
        "discounted cumulative gain of the hits (1/log2(rank+1)) over the best possible"
        " for the user's held-out items.",
    ),
    ("mrr@25", "1 / rank of the first hit within 25 (0 without one)."),
    ("map@10", "mean of precision at each hit's rank within 10, over min(held-out items, 10)."),
    (
        "holdout",
        "the protocol's test part (random 25% of each user's interactions by default,"
        " seeded); items seen in training are never recommended; popularity is scored on the same"
        " split.",
    ),
    ("coverage@10", "holdout metric: share of the catalog in any evaluated user's top 10."),
    (
        "catalog coverage",
        "served: share of the active version's items that recommend() put in"
        " at least one sampled user's top-k list.",
    ),
    (
        "popularity bias",
        "items are ranked by their (weighted) interaction count in training,"
        " ties by id; the top 1% are the ceil(1% of the catalog) first. The share of recommended"
        " slots on them is compared with their share of the interactions: a ratio above 1 means"
        " the model concentrates on popular items more than users did.",
    ),
    (
        "sample",
        "users are the active version's, taken in md5(user id) order, so every report"
        " of a version samples the same users.",
    ),
]

CSS = """
:root{--ink:#1f2937;--muted:#6b7280;--line:#e5e7eb;--model:MODEL_COLOUR;--base:BASELINE_COLOUR}
*{box-sizing:border-box}
body{margin:0;background:#f3f4f6;color:var(--ink);
 font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
main{max-width:1180px;margin:0 auto;padding:28px 28px 48px}
header{background:linear-gradient(120deg,#1e3a8a,#2563eb);color:#fff;border-radius:14px;
 padding:22px 28px;margin-bottom:20px}
header .kicker{text-transform:uppercase;letter-spacing:.08em;font-size:12px;opacity:.8}
header h1{margin:4px 0 6px;font-size:28px}
header p{margin:0;opacity:.92}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(190px,1fr));gap:14px;
 margin-bottom:20px}
.card{background:#fff;border-radius:12px;padding:14px 16px;box-shadow:0 1px 2px #0000000f;
 border-top:4px solid var(--model)}
.card .label{font-size:12px;text-transform:uppercase;letter-spacing:.05em;color:var(--muted)}
.card .value{font-size:28px;font-weight:700;font-variant-numeric:tabular-nums}
.card .note{font-size:13px;color:var(--muted)}
section{background:#fff;border-radius:12px;padding:18px 22px;margin-bottom:20px;
 box-shadow:0 1px 2px #0000000f}
h2{font-size:19px;margin:0 0 12px}
figure{margin:0 0 12px}
figure img{display:block;width:100%;height:auto}
figcaption,.note{font-size:13px;color:var(--muted)}
.empty{color:var(--muted);font-style:italic}
table{border-collapse:collapse;width:100%;font-size:13px;margin:6px 0 4px}
th,td{padding:6px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{font-size:12.5px;font-weight:600;color:var(--muted);border-bottom:2px solid var(--line);
 white-space:nowrap}
table.compact{width:auto;min-width:60%}
table.compact td,table.compact th{padding-left:22px;padding-right:22px}
td small{display:block;font-size:11.5px;color:var(--muted)}
.nowrap{white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tbody tr:nth-child(even){background:#f9fafb}
.scroll{overflow-x:auto}
.two{display:grid;grid-template-columns:1fr 1fr;gap:22px;align-items:start}
.badge{display:inline-block;padding:1px 8px;border-radius:999px;font-size:12px;
 background:#e5e7eb;color:#374151}
.badge.active,.badge.succeeded{background:#dbeafe;color:#1e40af}
.badge.failed{background:#fee2e2;color:#991b1b}
.badge.running{background:#fef3c7;color:#92400e}
code{font-size:13px;background:#f3f4f6;padding:1px 4px;border-radius:4px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:6px 18px;margin:0;font-size:14px}
dt{font-weight:600}
dd{margin:0;color:#374151}
footer{text-align:center;font-size:12px;color:var(--muted)}
@media (max-width:760px){.two{grid-template-columns:1fr}}
""".replace("MODEL_COLOUR", MODEL).replace("BASELINE_COLOUR", BASELINE)

# marks <html data-images="loaded/total"> once the page has loaded, so a headless browser
# (and a reader's devtools) can tell whether every chart was found beside the page
SCRIPT = (
    "addEventListener('load',()=>{const i=[...document.images];"
    "document.documentElement.dataset.images="
    "i.filter(x=>x.complete&&x.naturalWidth>0).length+'/'+i.length})"
)


def render(d: ReportData, charts: dict[str, Chart]) -> str:
    """The page: every value from the database is escaped; charts are referenced by file name."""
    v = d.active
    subtitle = (
        f"recipe <strong>{_e(_recipe_of(v))}</strong>"
        f" · active version <strong>v{v.version}</strong>"
        f" (trained {_e(f'{v.created_at:%Y-%m-%d %H:%M}')}) · {len(d.versions)} kept"
        f" version{'s' if len(d.versions) != 1 else ''}"
    )
    definitions = "".join(f"<dt>{_e(t)}</dt><dd>{_e(x)}</dd>" for t, x in DEFINITIONS)
    params = _e(json.dumps({key: val for key, val in v.params.items() if key != "trials"}))
    body = "".join(
        [
            f'<header><div class="kicker">pyrec evaluation report</div><h1>{_e(d.model)}</h1>'
            f"<p>{subtitle}</p></header>",
            _summary(d),
            _versions_section(d, charts),
            _metrics_section(d, charts),
            _auto_section(d, charts),
            _bias_section(d, charts),
            _runs_section(d),
            '<section id="section-definitions"><h2>Definitions</h2>'
            f"<dl>{definitions}</dl>"
            f'<p class="note">Active version parameters: <code>{params}</code></p></section>',
            f"<footer>generated by pyrec_pg {_e(__version__)} at"
            f" {_e(f'{d.generated_at:%Y-%m-%d %H:%M:%S %Z}')}</footer>",
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(d.model)} · pyrec evaluation report</title><style>{CSS}</style></head>"
        f"<body><main>{body}</main><script>{SCRIPT}</script></body></html>\n"
    )
