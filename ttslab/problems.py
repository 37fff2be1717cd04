"""Problems: the `Problem` record and one loader over Hugging Face `datasets` (hub ids or local files).

Field mappings turn each benchmark's columns into a Problem; `format: auto` picks the mapping from the
columns present. The bundled offline set (ttslab/data/bundled.jsonl, written for this package: 52
problems from grade school to early competition, levels 1-5) is the default and needs no network.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

BUNDLED = Path(__file__).parent / "data" / "bundled.jsonl"


@dataclass(frozen=True)
class Problem:
    id: str
    question: str
    answer: str  # gold answer (LaTeX or plain)
    level: int | None = None  # MATH level 1-5; None when the benchmark has none (AIME)
    subject: str | None = None
    source: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _math500(row: dict, i: int) -> dict:
    return dict(id=row["unique_id"], question=row["problem"], answer=row["answer"],
                level=int(row["level"]), subject=row.get("subject"))


def _aime24(row: dict, i: int) -> dict:
    # AIME answers are integers 0-999; some copies store them zero-padded ("025")
    answer = str(row["answer"]).strip()
    answer = str(int(answer)) if answer.isdigit() else answer
    return dict(id=str(row.get("id", i)), question=row["problem"], answer=answer, level=None, subject="aime")


def _bundled(row: dict, i: int) -> dict:
    return dict(id=row["id"], question=row["question"], answer=str(row["answer"]),
                level=row.get("level"), subject=row.get("subject"))


FORMATS: dict[str, tuple[set[str], Callable[[dict, int], dict]]] = {
    "math500": ({"problem", "answer", "level", "unique_id"}, _math500),
    "aime24": ({"problem", "answer"}, _aime24),
    "bundled": ({"id", "question", "answer"}, _bundled),
}


def _rows(path: str, split: str) -> tuple[Iterable[dict], str]:
    """Rows of a local file (jsonl/json/parquet) or a hub dataset, read with `datasets`."""
    import datasets

    if path == "bundled":
        path = str(BUNDLED)
    p = Path(path).expanduser()
    local_like = p.suffix in {".jsonl", ".json", ".parquet"} or path.startswith((".", "/", "~"))
    if local_like:
        if not p.is_file():
            raise FileNotFoundError(f"dataset.path={path!r}: file not found (expected a .jsonl, .json or .parquet file)")
        builder = "parquet" if p.suffix == ".parquet" else "json"
        ds = datasets.load_dataset(builder, data_files=str(p), split="train")
        return ds, p.stem
    try:
        ds = datasets.load_dataset(path, split=split)
    except Exception as e:  # offline, unknown id, bad split: say which setting to change
        raise RuntimeError(
            f"dataset.path={path!r} (split {split!r}) could not be loaded from the Hugging Face hub: "
            f"{type(e).__name__}: {e}. Without hub access point dataset.path at a local .jsonl/.json/.parquet file"
        ) from e
    return ds, path.split("/")[-1]


def load_problems(
    path: str = "bundled",
    format: str = "auto",
    split: str = "test",
    limit: int | None = None,
    ids: Sequence[str] | None = None,
    levels: Sequence[int] | None = None,
    source: str | None = None,
) -> list[Problem]:
    """Load problems, then filter by `levels` and `ids` and keep the first `limit`."""
    rows, default_source = _rows(path, split)
    columns = set(rows.column_names) if hasattr(rows, "column_names") else None
    if format == "auto":
        matches = [f for f, (cols, _) in FORMATS.items() if columns is not None and cols <= columns]
        if not matches:
            raise ValueError(
                f"dataset.path={path!r}: columns {sorted(columns or [])} match no known format; "
                f"set dataset.format to one of {', '.join(FORMATS)}"
            )
        format = matches[0]
    if format not in FORMATS:
        raise ValueError(f"dataset.format={format!r} is unknown; expected auto or one of {', '.join(FORMATS)}")
    needed, mapper = FORMATS[format]
    if columns is not None and not needed <= columns:
        raise ValueError(f"dataset.path={path!r}: format {format!r} needs columns {sorted(needed - columns)}")
    src = source or ("bundled" if path == "bundled" else default_source)
    problems = [Problem(**mapper(row, i), source=src) for i, row in enumerate(rows)]
    if levels:
        wanted = {int(x) for x in levels}
        problems = [p for p in problems if p.level in wanted]
    if ids:
        wanted_ids = [str(x) for x in ids]
        by_id = {p.id: p for p in problems}
        missing = [x for x in wanted_ids if x not in by_id]
        if missing:
            raise ValueError(f"dataset.ids: {missing[:5]} not found in {path!r}")
        problems = [by_id[x] for x in wanted_ids]
    if limit is not None:
        if limit < 1:
            raise ValueError(f"dataset.limit={limit}: expected a positive integer or null")
        problems = problems[:limit]
    return problems


def shard(problems: list[Problem], spec: str) -> list[Problem]:
    """The problems of shard "i/k": every k-th problem starting at i (by position, stable)."""
    try:
        i, k = (int(x) for x in str(spec).split("/"))
        assert 0 <= i < k
    except (ValueError, AssertionError):
        raise ValueError(f"shard={spec!r}: expected i/k with 0 <= i < k, e.g. 0/4") from None
    return problems[i::k]
