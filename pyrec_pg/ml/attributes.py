"""Attribute models: item (or user) attributes and texts regressed onto trained vectors (ridge)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from pyrec_pg.db.types import NUMERIC_TYPES, TEXT_TYPES

MAX_VALUES = 200  # values kept per text column (the most frequent)
BINS = 8  # quantile bins per numeric column
RIDGE = 1.0  # regularization of the attributes -> vector regression
# text embeddings are unit vectors spread over hundreds of dimensions (entries ~0.04), while
# an attribute is a 0/1 feature: scaled so the ridge does not shrink the text away. Chosen
# among 0.5 to 16 on MovieLens-100K items held out with seeds 100-102, not the reported ones
# (python -m bench.bench_text --sweep; docs/text.md): 2 ranks held-out items within 0.002 of
# the best recall@10 (at 1) and brings more of them into the catalog's top 10
TEXT_SCALE = 2.0


@dataclass(frozen=True)
class Spec:
    """Which item columns become features, and how: serialized into the version."""

    columns: list[dict[str, Any]]  # {"name", "kind": category|multi|bins, "values"|"edges"}

    def names(self) -> list[str]:
        out = ["(bias)"]
        for c in self.columns:
            if c["kind"] == "bins":
                out += [f"{c['name']}#{b}" for b in range(len(c["edges"]) + 1)]
            else:
                out += [f"{c['name']}={v}" for v in c["values"]]
        return out

    def matrix(self, rows: list[dict[str, Any]]) -> sp.csr_matrix:
        """(items x features) 0/1 matrix; a bias column, then each column's features."""
        offsets, n = [], 1
        for c in self.columns:
            offsets.append(n)
            n += len(c["edges"]) + 1 if c["kind"] == "bins" else len(c["values"])
        index = [
            {v: i for i, v in enumerate(c["values"])} if c["kind"] != "bins" else {}
            for c in self.columns
        ]
        r, col = [], []
        for i, row in enumerate(rows):
            r.append(i)
            col.append(0)
            for c, off, idx in zip(self.columns, offsets, index, strict=True):
                value = row.get(c["name"])
                if value is None:
                    continue
                if c["kind"] == "bins":
                    r.append(i)
                    col.append(off + int(np.searchsorted(c["edges"], float(value), "right")))
                    continue
                for v in value if c["kind"] == "multi" else [value]:
                    hit = idx.get(str(v))
                    if hit is not None:
                        r.append(i)
                        col.append(off + hit)
        data = np.ones(len(r), dtype=np.float64)
        m = sp.csr_matrix((data, (r, col)), shape=(len(rows), n))
        m.data[:] = 1.0  # a value listed twice counts once
        return m


def _spec(key: str, rows: list[dict[str, Any]], types: dict[str, str]) -> Spec:
    cols: list[dict[str, Any]] = []
    for name, typ in types.items():
        if name == key:
            continue
        values = [row[name] for row in rows if row.get(name) is not None]
        if not values:
            continue
        if typ in NUMERIC_TYPES:
            edges = np.unique(
                np.quantile(np.asarray(values, dtype=float), np.linspace(0, 1, BINS + 1)[1:-1])
            )
            cols.append({"name": name, "kind": "bins", "edges": edges.tolist()})
        elif typ in TEXT_TYPES or typ == "boolean":
            counts: dict[str, int] = {}
            for v in values:
                counts[str(v)] = counts.get(str(v), 0) + 1
            # identifiers and free text (titles) describe one item each: not a shared trait
            if len(counts) > max(50, len(values) // 5):
                continue
            kept = sorted(counts, key=lambda v: (-counts[v], v))[:MAX_VALUES]
            cols.append({"name": name, "kind": "category", "values": kept})
        elif typ.endswith("[]") and typ[:-2] in TEXT_TYPES:
            counts = {}
            for vs in values:
                for v in vs:
                    counts[str(v)] = counts.get(str(v), 0) + 1
            kept = sorted(counts, key=lambda v: (-counts[v], v))[:MAX_VALUES]
            cols.append({"name": name, "kind": "multi", "values": kept})
    return Spec(cols)


@dataclass(frozen=True)
class Cold:
    ids: list[str]
    vectors: npt.NDArray[np.float32]
    state: dict[str, Any]  # the spec and the regression weights, for items added later


def features(
    spec: Spec, rows: list[dict[str, Any]], text: npt.NDArray[np.float32] | None, scale: float
) -> tuple[sp.csr_matrix, npt.NDArray[np.float64] | None]:
    """The attribute features of `rows` (sparse) and their text embeddings times `scale`
    (dense, kept apart: a dense block in a sparse matrix would cost three times its size)."""
    return spec.matrix(rows), (text.astype(np.float64) * scale if text is not None else None)


def _gram(f: sp.csr_matrix, t: npt.NDArray[np.float64] | None) -> npt.NDArray[np.float64]:
    """[f t]'[f t] without forming [f t]."""
    ff = np.asarray((f.T @ f).toarray())
    if t is None:
        return ff
    ft = np.asarray(f.T @ t)
    return np.block([[ff, ft], [ft.T, t.T @ t]])


def _times(
    f: sp.csr_matrix, t: npt.NDArray[np.float64] | None, w: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """[f t] @ w."""
    out = np.asarray(f @ w[: f.shape[1]])
    return out + t @ w[f.shape[1] :] if t is not None else out


def fit(
    key: str,
    ids: list[str],
    rows: list[dict[str, Any]],
    types: dict[str, str],
    trained_ids: npt.NDArray[np.str_],
    vectors: npt.NDArray[np.float32],
    text: npt.NDArray[np.float32] | None = None,
    text_state: dict[str, Any] | None = None,
) -> Cold | None:
    """Fit attributes -> vector on the trained rows (ridge); vector the others.

    `rows` are the attribute rows of `ids`, `types` their columns' Postgres types, `key` the id
    column; `text`, when given, the rows' text embeddings (unit length, zeros for no text),
    features beside the attributes, with `text_state` (which model, which columns) kept in the
    state so items added later are embedded the same way. None when too few rows are trained
    or nothing makes a feature.
    """
    spec = _spec(key, rows, types)
    code = {s: i for i, s in enumerate(trained_ids.tolist())}
    trained = np.asarray([code.get(i, -1) for i in ids])
    have = trained >= 0
    if have.sum() < 2 or not (spec.columns or text is not None):
        return None
    f, t = features(spec, rows, text, TEXT_SCALE)
    ft, tt = f[have], (t[have] if t is not None else None)
    y = vectors[trained[have]].astype(np.float64)
    gram = _gram(ft, tt)
    gram += RIDGE * np.eye(gram.shape[0])
    gram[0, 0] -= RIDGE  # the bias (mean vector) is not shrunk
    rhs = np.vstack([np.asarray(ft.T @ y)] + ([tt.T @ y] if tt is not None else []))
    weights = np.linalg.solve(gram, rhs)
    cold = np.flatnonzero(~have)
    state: dict[str, Any] = {"spec": spec.columns, "weights": weights.tolist()}
    if text is not None:
        state["text"] = {**(text_state or {}), "scale": TEXT_SCALE}
    out = _times(f[cold], t[cold] if t is not None else None, weights).astype(np.float32)
    return Cold(ids=[ids[i] for i in cold], vectors=out, state=state)


def vectors_for(
    state: dict[str, Any],
    rows: list[dict[str, Any]],
    text: npt.NDArray[np.float32] | None = None,
) -> npt.NDArray[np.float32]:
    """Vectors of new rows from a version's state; `text` holds their embeddings when the
    state was fitted with text (state["text"]). A state without a spec (recipe semantic)
    serves the embeddings themselves."""
    if "spec" not in state:
        assert text is not None, "a text-only state needs the rows' embeddings"
        return text.astype(np.float32)
    spec = Spec(state["spec"])
    weights = np.asarray(state["weights"], dtype=np.float64)
    has_text = "text" in state
    assert text is not None or not has_text, "a state fitted with text needs the embeddings"
    scale = float(state["text"]["scale"]) if has_text else 0.0
    f, t = features(spec, rows, text if has_text else None, scale)
    return _times(f, t, weights).astype(np.float32)
