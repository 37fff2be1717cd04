"""Problems: the `Problem` record and one loader over Hugging Face `datasets` (hub ids or local files).

Field mappings turn each benchmark's columns into a Problem; `format: auto` picks the mapping from the
columns present. The bundled offline set (ttslab/data/bundled.jsonl, written for this package: 52
problems from grade school to early competition, levels 1-5) is the default and needs no network.

A local file is validated before `datasets` reads it (and before any model loads): an empty file, a line
that is not JSON, bytes that are not UTF-8, a missing field, a field of the wrong type, a field whose
type changes between lines (Arrow needs one type per column) and a duplicated problem id are each an
`InputError` naming the file, the line, the field and what was expected. Filters that select nothing
(levels, ids, a limit beyond the problems selected) are a `ConfigError`.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ttslab.errors import ConfigError, InputError

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


def _level(value: Any) -> int | None:
    """MATH levels as stored: 3, "3" or "Level 3"."""
    if value is None:
        return None
    m = re.fullmatch(r"\s*(?:Level\s*)?(\d+)\s*", str(value))
    return int(m.group(1)) if m else None


def _math500(row: dict, i: int) -> dict:
    return dict(id=str(row["unique_id"]), question=row["problem"], answer=str(row["answer"]),
                level=_level(row["level"]), subject=row.get("subject"))


def _aime24(row: dict, i: int) -> dict:
    # AIME answers are integers 0-999; some copies store them zero-padded ("025")
    answer = str(row["answer"]).strip()
    answer = str(int(answer)) if answer.isdigit() else answer
    return dict(id=str(row.get("id", i)), question=row["problem"], answer=answer, level=None, subject="aime")


def _bundled(row: dict, i: int) -> dict:
    return dict(id=str(row["id"]), question=row["question"], answer=str(row["answer"]),
                level=_level(row.get("level")), subject=row.get("subject"))


# A field's check: (accepts the value?, what is expected)
_TEXT = (lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string")
_ANSWER = (lambda v: (isinstance(v, str) and v.strip() != "") or (isinstance(v, (int, float)) and not isinstance(v, bool)),
           "the gold answer (a non-empty string or a number)")
_ID = (lambda v: (isinstance(v, str) and v != "") or (isinstance(v, int) and not isinstance(v, bool)),
       "a problem id (a string or an integer)")
_LEVEL = (lambda v: _level(v) is not None and not isinstance(v, bool), 'a level: an integer like 3 (or "Level 3")')
_OPT_LEVEL = (lambda v: v is None or _LEVEL[0](v), _LEVEL[1] + " or null")

# format -> (required fields, optional fields checked when present, mapper)
FORMATS: dict[str, tuple[dict[str, tuple], dict[str, tuple], Callable[[dict, int], dict]]] = {
    "math500": ({"problem": _TEXT, "answer": _ANSWER, "level": _LEVEL, "unique_id": _ID}, {}, _math500),
    "aime24": ({"problem": _TEXT, "answer": _ANSWER}, {"id": _ID}, _aime24),
    "bundled": ({"id": _ID, "question": _TEXT, "answer": _ANSWER}, {"level": _OPT_LEVEL}, _bundled),
}


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    return {str: "string", list: "list", dict: "object"}.get(type(v), type(v).__name__)


def _read_json_rows(p: Path) -> list[tuple[str, dict]]:
    """(location, row) of every row of a JSON-lines file or a JSON array file, parsed strictly."""
    data = p.read_bytes()
    if not data.strip():
        raise InputError(f"{p}: the file is empty; expected one JSON object per line (a problem per line)")
    if data.lstrip()[:1] == b"[":  # a JSON array of objects (`datasets` reads both forms)
        try:
            items = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"{p}: not a valid JSON array ({e}); expected a JSON array of objects or one "
                             "JSON object per line") from None
        rows = [(f"{p}: item {i}", r) for i, r in enumerate(items)]
    else:
        rows = []
        for n, raw in enumerate(data.split(b"\n"), 1):
            if not raw.strip():
                continue
            where = f"{p}:{n}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError(f"{where}: not UTF-8 text (binary data?); expected one JSON object per line") from None
            try:
                rows.append((where, json.loads(line)))
            except json.JSONDecodeError as e:
                raise InputError(f"{where}: not valid JSON ({e.msg} at column {e.colno}); expected one JSON "
                                 "object per line") from None
    for where, r in rows:
        if not isinstance(r, dict):
            raise InputError(f"{where}: a JSON {_kind(r)}; expected a JSON object (one problem) per line")
    if not rows:
        raise InputError(f"{p}: no problems in the file; expected one JSON object per line")
    return rows


def _read_parquet_rows(p: Path) -> list[tuple[str, dict]]:
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(p).to_pylist()
    except Exception as e:  # pyarrow raises several types for a damaged or foreign file
        raise InputError(f"{p}: not a readable parquet file ({type(e).__name__}: {e})") from None
    if not rows:
        raise InputError(f"{p}: the parquet file holds no rows; expected one row per problem")
    return [(f"{p}: row {i}", r) for i, r in enumerate(rows)]


def _pick_format(columns: set[str], format: str, what: str) -> str:
    if format != "auto":
        if format not in FORMATS:
            raise ConfigError(f"dataset.format={format!r} is unknown; expected auto or one of {', '.join(FORMATS)}")
        return format
    matches = [f for f, (req, _, _) in FORMATS.items() if set(req) <= columns]
    if not matches:
        needs = "; ".join(f"{f} needs {sorted(set(req) - columns)}" for f, (req, _, _) in FORMATS.items())
        raise InputError(f"{what}: fields {sorted(columns)} match no known problem format ({needs}); add the "
                         f"fields or set dataset.format to one of {', '.join(FORMATS)}")
    return matches[0]


def validate_rows(rows: list[tuple[str, dict]], format: str, what: str) -> str:
    """Check every row for `format` (auto: picked from the fields present); returns the format.

    Raises InputError naming the row's location, the field and what was expected."""
    columns = set().union(*(r.keys() for _, r in rows))
    format = _pick_format(columns, format, what)
    required, optional, _ = FORMATS[format]
    first: dict[str, tuple[str, str]] = {}  # field -> (kind, location) of its first non-null value
    for where, r in rows:
        for field, (ok, expected) in required.items():
            if field not in r:
                raise InputError(f"{where}: field {field!r} is missing; expected {expected} (format {format})")
        for field, (ok, expected) in {**required, **optional}.items():
            if field in r and not ok(r[field]):
                raise InputError(f"{where}: field {field!r} is {_kind(r[field])} {str(r[field])[:40]!r}; "
                                 f"expected {expected} (format {format})")
        for field, v in r.items():
            k = _kind(v)
            if k == "null":
                continue
            k0, where0 = first.setdefault(field, (k, where))
            if k != k0:
                raise InputError(f"{where}: field {field!r} is a {k} here but a {k0} at {where0}; a field needs "
                                 "one type on every line")
    return format


def _local_rows(p: Path) -> list[tuple[str, dict]]:
    if p.suffix == ".parquet":
        return _read_parquet_rows(p)
    return _read_json_rows(p)


def _rows(path: str, split: str, format: str) -> tuple[Iterable[dict], str, str]:
    """Rows of a local file (jsonl/json/parquet) or a hub dataset, validated, then read with `datasets`."""
    import datasets

    datasets.disable_progress_bars()  # "Generating train split" on stderr would bury the run's own messages

    if path == "bundled":
        path = str(BUNDLED)
    p = Path(path).expanduser()
    local_like = p.suffix in {".jsonl", ".json", ".parquet"} or path.startswith((".", "/", "~"))
    if local_like:
        if not p.exists():
            raise InputError(f"dataset.path={path!r}: file not found (expected a .jsonl, .json or .parquet file)")
        if not p.is_file():
            raise InputError(f"dataset.path={path!r}: not a file (expected a .jsonl, .json or .parquet file)")
        format = validate_rows(_local_rows(p), format, str(p))
        builder = "parquet" if p.suffix == ".parquet" else "json"
        try:
            ds = datasets.load_dataset(builder, data_files=str(p), split="train")
        except Exception as e:  # validated above; anything left is named with the file
            raise InputError(f"{p}: `datasets` could not read it ({type(e).__name__}: {e})") from None
        return ds, p.stem, format
    try:
        ds = datasets.load_dataset(path, split=split)
    except Exception as e:  # offline, unknown id, bad split: say which setting to change
        raise InputError(
            f"dataset.path={path!r} (split {split!r}) could not be loaded from the Hugging Face hub: "
            f"{type(e).__name__}: {e}. Without hub access point dataset.path at a local .jsonl/.json/.parquet file"
        ) from None
    format = validate_rows([(f"{path} ({split}) row {i}", r) for i, r in enumerate(ds)], format, path)
    return ds, path.split("/")[-1], format


def load_problems(
    path: str = "bundled",
    format: str = "auto",
    split: str = "test",
    limit: int | None = None,
    ids: Sequence[str] | None = None,
    levels: Sequence[int] | None = None,
    source: str | None = None,
) -> list[Problem]:
    """Load problems, then filter by `levels` and `ids` and keep the first `limit`.

    Every row is validated first (InputError); a filter that selects nothing, ids not in the dataset and
    a limit beyond the problems selected are ConfigErrors."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"dataset.limit={limit!r}: expected a positive integer or null")
    rows, default_source, format = _rows(path, split, format)
    _, _, mapper = FORMATS[format]
    src = source or ("bundled" if path == "bundled" else default_source)
    problems = [Problem(**mapper(row, i), source=src) for i, row in enumerate(rows)]
    seen: dict[str, int] = {}
    for i, p in enumerate(problems):
        if p.id in seen:
            raise InputError(f"dataset.path={path!r}: problem id {p.id!r} appears twice (rows {seen[p.id]} and "
                             f"{i}); ids must be unique: records are keyed by them")
        seen[p.id] = i
    if levels:
        wanted = {int(x) for x in levels}
        present = sorted({p.level for p in problems if p.level is not None})
        problems = [p for p in problems if p.level in wanted]
        if not problems:
            have = f"levels present: {present}" if present else "this dataset has no levels"
            raise ConfigError(f"dataset.levels={sorted(wanted)}: no problem of {path!r} has these levels ({have})")
    if ids:
        wanted_ids = [str(x) for x in ids]
        by_id = {p.id: p for p in problems}
        missing = [x for x in wanted_ids if x not in by_id]
        if missing:
            raise ConfigError(f"dataset.ids: {missing[:5]} not found in {path!r}"
                              + (" at the selected levels" if levels else "")
                              + f" (ids look like {next(iter(by_id), '?')!r})")
        problems = [by_id[x] for x in wanted_ids]
    if limit is not None:
        if limit > len(problems):
            raise ConfigError(f"dataset.limit={limit}: only {len(problems)} problems of {path!r} are selected; "
                              f"set dataset.limit to at most {len(problems)} or null")
        problems = problems[:limit]
    return problems


def shard(problems: list[Problem], spec: str) -> list[Problem]:
    """The problems of shard "i/k": every k-th problem starting at i (by position, stable)."""
    try:
        i, k = (int(x) for x in str(spec).split("/"))
        assert 0 <= i < k
    except (ValueError, AssertionError):
        raise ConfigError(f"shard={spec!r}: expected i/k with 0 <= i < k, e.g. 0/4") from None
    return problems[i::k]
