"""A seeded synthetic dataset: power-law item popularity and clustered tastes to learn."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from pyrec_pg.dev.copy import copy_rows

EVENT_TYPES = ("view", "click", "purchase")
_EVENT_P = (0.8, 0.15, 0.05)
CATEGORIES = tuple(f"cat_{i:02d}" for i in range(20))
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Synthetic:
    users: I64  # per interaction
    items: I64
    events: npt.NDArray[np.int64]  # index into EVENT_TYPES
    seconds: I64  # offset from `start`
    item_cluster: I64  # per item
    user_cluster: I64  # per user
    item_price: npt.NDArray[np.float64]


def generate(
    n_interactions: int,
    n_users: int | None = None,
    n_items: int | None = None,
    seed: int = 0,
    in_cluster: float = 0.8,
    days: int = 180,
) -> Synthetic:
    """Users mostly pick popular items of their own taste cluster, otherwise any popular item."""
    rng = np.random.default_rng(seed)
    n_users = n_users or max(100, n_interactions // 50)
    n_items = n_items or max(50, int(n_interactions**0.5 * 3))
    clusters = len(CATEGORIES)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9  # Zipf-like
    rng.shuffle(popularity)
    item_cluster = rng.integers(0, clusters, n_items)
    user_cluster = rng.integers(0, clusters, n_users)
    activity = rng.lognormal(0.0, 1.0, n_users)
    users = rng.choice(n_users, n_interactions, p=activity / activity.sum())
    items = np.empty(n_interactions, dtype=np.int64)
    local = rng.random(n_interactions) < in_cluster
    cdf = np.cumsum(popularity) / popularity.sum()
    items[~local] = np.searchsorted(cdf, rng.random(int((~local).sum())))
    for c in range(clusters):
        members = np.flatnonzero(item_cluster == c)
        pick = local & (user_cluster[users] == c)
        if members.size == 0:
            items[pick] = np.searchsorted(cdf, rng.random(int(pick.sum())))
            continue
        local_cdf = np.cumsum(popularity[members]) / popularity[members].sum()
        items[pick] = members[np.searchsorted(local_cdf, rng.random(int(pick.sum())))]
    items = np.minimum(items, n_items - 1)
    return Synthetic(
        users=users.astype(np.int64),
        items=items,
        events=rng.choice(len(EVENT_TYPES), n_interactions, p=_EVENT_P).astype(np.int64),
        seconds=rng.integers(0, days * 86400, n_interactions),
        item_cluster=item_cluster.astype(np.int64),
        user_cluster=user_cluster.astype(np.int64),
        item_price=np.round(rng.lognormal(3.0, 0.8, n_items), 2),
    )


def load(
    conn: psycopg.Connection[Any],
    data: Synthetic,
    schema: str = "public",
    prefix: str = "synthetic",
    replace: bool = False,
) -> dict[str, int]:
    """Create `<prefix>_interactions`, `<prefix>_items`, `<prefix>_users` in one transaction."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    s = sql.Identifier(schema)
    inter, items, users = (
        sql.Identifier(f"{prefix}_{t}") for t in ("interactions", "items", "users")
    )
    with conn.transaction():
        if replace:
            conn.execute(
                sql.SQL("DROP TABLE IF EXISTS {s}.{a}, {s}.{b}, {s}.{c}").format(
                    s=s, a=inter, b=items, c=users
                )
            )
        conn.execute(
            sql.SQL(
                "CREATE TABLE {s}.{items} (item_id bigint PRIMARY KEY, category text NOT NULL,"
                " price numeric(10,2) NOT NULL, created_at timestamptz NOT NULL);"
                "CREATE TABLE {s}.{users} (user_id bigint PRIMARY KEY, segment text NOT NULL);"
                "CREATE TABLE {s}.{inter} (user_id bigint NOT NULL, item_id bigint NOT NULL,"
                " event_type text NOT NULL, ts timestamptz NOT NULL)"
            ).format(s=s, items=items, users=users, inter=inter)
        )
        copy_rows(
            conn,
            sql.SQL("{}.{}").format(s, items),
            ["item_id", "category", "price", "created_at"],
            [
                (i, CATEGORIES[c], p, start - timedelta(days=int(i % 365)))
                for i, (c, p) in enumerate(
                    zip(data.item_cluster.tolist(), data.item_price.tolist(), strict=True)
                )
            ],
        )
        copy_rows(
            conn,
            sql.SQL("{}.{}").format(s, users),
            ["user_id", "segment"],
            [(u, f"seg_{c:02d}") for u, c in enumerate(data.user_cluster.tolist())],
        )
        stamps = [start + timedelta(seconds=int(x)) for x in data.seconds.tolist()]
        copy_rows(
            conn,
            sql.SQL("{}.{}").format(s, inter),
            ["user_id", "item_id", "event_type", "ts"],
            list(
                zip(
                    data.users.tolist(),
                    data.items.tolist(),
                    [EVENT_TYPES[e] for e in data.events.tolist()],
                    stamps,
                    strict=True,
                )
            ),
        )
        conn.execute(
            sql.SQL("CREATE INDEX ON {s}.{t} (user_id); ANALYZE {s}.{t}").format(s=s, t=inter)
        )
    return {
        "interactions": int(data.users.size),
        "items": int(data.item_cluster.size),
        "users": int(data.user_cluster.size),
    }
