"""Run directories: resolved config, append-only records, resume, shard merge, loading.

A run directory holds
    config.yaml      the resolved Hydra config that made it (identity.json: what makes its records)
    records.jsonl    one JSON line per (problem, method, budget), appended and flushed as each finishes
    summary.json     derived from records.jsonl only (rewritten at the end of a run)
    .lock            the advisory lock of the process writing it (`lock_run_dir`): its pid and start time

Record fields (schema 1):
    problem_id, source, level, subject, gold              which problem
    policy, policy_params, prm, prm_params, engine        who solved and scored it (params for FLOPs)
    method, budget, beam_width, seed                      how (budget N; beam_width M for beam/DVTS)
    candidates: [{text, steps, step_scores, answer, key, correct, finish, subtree, usage}]
        the final solutions (BoN: N; beam search and DVTS: N/M). `key` is the canonical answer key used
        for voting (None: no answer), `subtree` the DVTS subtree / BoN sample index, `usage` the policy
        tokens attributable to that candidate.
    selections: {rule: {answer, correct}} for every scoring x voting rule, plus "oracle" (pass@N)
    usage: {"policy": TokenUsage dict, "prm": TokenUsage dict} for the whole record
    tree: search-tree nodes [{id, parent, depth, text, score, finish, selected}] (null for BoN/CoT)
    wall_time_s
A crash loses at most the record being written: a torn last line is ignored, and repaired (atomically:
temporary file and rename, never in place) when the run resumes. Any other unreadable line, or a line
of another schema, is an `InputError` naming the file and line.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttslab.errors import InputError

SCHEMA = 1
RECORDS = "records.jsonl"
CONFIG = "config.yaml"
SUMMARY = "summary.json"
IDENTITY = "identity.json"  # written by ttslab.config; copied by merge_runs
LOCK = ".lock"
# key -> (expected type(s), what it is): a line without these is not a ttslab record
REQUIRED: dict[str, tuple[tuple[type, ...], str]] = {
    "problem_id": ((str, int), "a string"),
    "method": ((str,), "a string"),
    "budget": ((int,), "an integer"),
    "candidates": ((list,), "a list"),
    "selections": ((dict,), "an object"),
}


def record_key(rec: dict[str, Any]) -> tuple:
    """Identity of a record inside a run: a rerun skips keys it already has."""
    return (str(rec["problem_id"]), rec["method"], int(rec["budget"]), rec.get("prm"), int(rec.get("seed", 0)))


# ---------------------------------------------------------------------------------------------- lock

_held: dict[str, list] = {}  # real path of a locked run directory -> [fd, depth]: re-entrant per process
_held_guard = threading.Lock()


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {info['pid']} on {info.get('host', '?')}, started {info.get('started', '?')}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not written its pid yet"


@contextlib.contextmanager
def lock_run_dir(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold the exclusive advisory lock of a run directory (created if missing) for the `with` block.

    `fcntl.flock` on `<run_dir>/.lock`: the kernel releases it when the holder exits in any way, so
    a killed run leaves no stale lock (the pid left in the file is only information). A second process
    gets an `InputError` naming the directory and the holder's pid. Re-entrant within one process.
    """
    p = Path(run_dir)
    if p.exists() and not p.is_dir():
        raise InputError(f"run directory {p} is a file; expected a directory")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"run directory {p} cannot be created ({e.strerror or e})") from None
    key = os.path.realpath(p)
    with _held_guard:
        if key in _held:
            _held[key][1] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield p
        finally:
            with _held_guard:
                _held[key][1] -= 1
        return
    try:
        fd = os.open(p / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise InputError(f"run directory {p}: cannot open its lock file {p / LOCK} ({e.strerror or e})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        who = _holder(fd)
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise InputError(
                f"run directory {p} is being written by another ttslab process ({who}); wait for it to "
                "finish, stop it, or choose another run directory"
            ) from None
        raise InputError(f"run directory {p}: cannot lock {p / LOCK} ({e.strerror or e})") from None
    info = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "started_unix": time.time()}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
    with _held_guard:
        _held[key] = [fd, 1]
    try:
        yield p
    finally:
        with _held_guard:
            del _held[key]
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # the file stays (deleting it would race a waiting locker)
        os.close(fd)  # releases the lock


# ------------------------------------------------------------------------------------------- reading


def _records_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such run directory or records file; expected a run directory written by "
                         "`ttslab run` (or its records.jsonl)")
    return p / RECORDS if p.is_dir() else p


def _check_record(rec: Any, where: str) -> None:
    if not isinstance(rec, dict):
        raise InputError(f"{where}: expected a JSON object (one ttslab record per line), got {type(rec).__name__}")
    missing = [k for k in REQUIRED if k not in rec]
    if missing:
        raise InputError(
            f"{where}: not a ttslab record: key(s) {', '.join(repr(k) for k in missing)} missing "
            f"(a record has {', '.join(REQUIRED)}); is this the records.jsonl of a `ttslab run`?"
        )
    for k, (types, what) in REQUIRED.items():
        v = rec[k]
        if not isinstance(v, types) or isinstance(v, bool):
            raise InputError(f"{where}: key {k!r} is {type(v).__name__} {str(v)[:40]!r}; expected {what}")
    schema = rec.get("schema", SCHEMA)
    if not isinstance(schema, int) or schema > SCHEMA:
        raise InputError(f"{where}: record schema {schema!r}; this ttslab reads schema <= {SCHEMA} (upgrade ttslab)")


def _parse(p: Path) -> tuple[list[dict[str, Any]], int | None]:
    """The records of a records.jsonl, and the byte offset of a torn last line (None: no torn tail)."""
    try:
        data = p.read_bytes()
    except OSError as e:
        raise InputError(f"{p}: cannot read ({e.strerror or e})") from None
    out: list[dict[str, Any]] = []
    lines = data.split(b"\n")  # the last element is b"" for a complete file, else the unterminated tail
    offset = 0
    for n, raw in enumerate(lines, 1):
        start, offset = offset, offset + len(raw) + 1
        if not raw.strip():
            continue
        last = n == len(lines)  # unterminated: the write of this record was interrupted
        where = f"{p}:{n}"
        try:
            rec = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            if last:
                return out, start
            raise InputError(f"{where}: not UTF-8 text; records.jsonl is damaged (restore it or delete "
                             "this line to recompute its record)") from None
        except json.JSONDecodeError as e:
            if last:
                return out, start
            raise InputError(f"{where}: not a JSON record ({e.msg} at column {e.colno}); records.jsonl is "
                             "damaged (restore it or delete this line to recompute its record)") from None
        _check_record(rec, where)
        out.append(rec)
    return out, None


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All complete records of a run directory (or a records.jsonl file); a torn last line is skipped.

    A directory without records.jsonl has none; a path that does not exist, a damaged line or a line of
    another schema is an `InputError` naming the file and line."""
    p = _records_file(path)
    if not p.exists():
        return []
    return _parse(p)[0]


def check_records(run_dir: str | os.PathLike) -> int:
    """Validate every line of a run directory's records up front (before loading any model).

    Returns the number of complete records (0 for a directory not written yet); raises `InputError`
    with file:line for anything a resume would fail on later."""
    p = Path(run_dir)
    if not p.exists():
        return 0
    if not p.is_dir():
        raise InputError(f"run directory {p} is a file; expected a directory")
    return len(read_records(p))


# ------------------------------------------------------------------------------------------- writing


def _atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` by `data` through a temporary file and a rename: readers and crashes see the old
    file or the new one, never a mix."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    with contextlib.suppress(OSError):  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def rewrite_records(run_dir: str | os.PathLike, records: Iterable[dict[str, Any] | str]) -> int:
    """Replace a run's records atomically, under its lock (dicts are serialised; strings are kept as
    the lines they are). For one-off migrations of stored runs; returns the number of records."""
    run_dir = Path(run_dir)
    with lock_run_dir(run_dir):
        lines = []
        for r in records:
            line = r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)
            lines.append(line if line.endswith("\n") else line + "\n")
        _atomic_write(run_dir / RECORDS, "".join(lines).encode("utf-8"))
        return len(_parse(run_dir / RECORDS)[0])


class RecordWriter:
    """Append-only writer: one line per record, flushed and fsynced so a kill loses nothing finished.

    Holds the run directory's lock (`lock_run_dir`) until closed."""

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / RECORDS
        self._lock = contextlib.ExitStack()
        self._lock.enter_context(lock_run_dir(run_dir))
        try:
            records: list[dict[str, Any]] = []
            if self.path.exists():
                records, torn = _parse(self.path)
                if torn is not None:  # drop the interrupted record's bytes: it is redone
                    _atomic_write(self.path, self.path.read_bytes()[:torn])
            self.done: set[tuple] = {record_key(r) for r in records}
            self._f = self.path.open("a", encoding="utf-8")
        except BaseException:
            self._lock.close()
            raise

    def has(self, key: tuple) -> bool:
        return key in self.done

    def write(self, rec: dict[str, Any]) -> None:
        rec = {"schema": SCHEMA, **rec}
        key = record_key(rec)
        if key in self.done:
            return
        self._f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())
        self.done.add(key)

    def close(self) -> None:
        try:
            self._f.close()
        finally:
            self._lock.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def merge_runs(shard_dirs: Iterable[str | os.PathLike], out_dir: str | os.PathLike) -> int:
    """Combine shard run directories into one (deduplicated by record key). Returns the record count.

    Holds the lock of the output directory, and of each shard while reading it (a shard still being
    written is refused)."""
    out = Path(out_dir)
    shard_dirs = [Path(d) for d in shard_dirs]
    for d in shard_dirs:
        if not (d / RECORDS).is_file():
            raise InputError(f"shard {d}: no {RECORDS} there; expected a run directory written by `ttslab run`")
    with lock_run_dir(out):
        for name in (CONFIG, IDENTITY):
            src = next((d / name for d in shard_dirs if (d / name).exists()), None)
            if src is not None and not (out / name).exists():
                _atomic_write(out / name, src.read_bytes())
        with RecordWriter(out) as w:
            for d in shard_dirs:
                # a shard still being written is refused; a read-only shard cannot be, so needs no lock
                with lock_run_dir(d) if os.access(d, os.W_OK) else contextlib.nullcontext():
                    shard_records = read_records(d)
                for rec in shard_records:
                    rec.pop("schema", None)
                    w.write(rec)
        return len(read_records(out))


@dataclass
class Run:
    """A run directory loaded for analysis."""

    path: Path
    records: list[dict[str, Any]]

    @classmethod
    def load(cls, path: str | os.PathLike) -> Run:
        p = Path(path)
        if not p.is_dir():
            what = "is a file" if p.exists() else "does not exist"
            raise InputError(f"run directory {p} {what}; expected a directory written by `ttslab run`")
        if not (p / RECORDS).is_file():
            raise InputError(f"{p}: no {RECORDS}; expected a run directory written by `ttslab run`")
        return cls(p, read_records(p))
