"""Run directories: resolved config, append-only records, resume, shard merge, loading.

A run directory holds
    config.yaml      the resolved Hydra config that made it (identity.json: what makes its records)
    records.jsonl    one JSON line per (problem, method, budget), appended and flushed as each finishes
    summary.json     derived from records.jsonl only (rewritten at the end of a run)
    .lock            the advisory lock of the process writing it (`lock_run_dir`): its pid and start time

Record fields: `ttslab.records.Record` (schema 1); what they mean and how they are built lives there.
Every file here is written without following symbolic links and read only if it is a regular file
(`ttslab.writes`): a run directory received from someone else cannot make ttslab write outside it.
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
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttslab.errors import InputError
from ttslab.records import (
    CONFIG_FILE,
    IDENTITY_FILE,
    RECORDS_FILE,
    describe_difference,
    identity_difference,
    read_identity,
    summary_problem,
)
from ttslab.writes import check_writable_name, kind, open_append, open_nofollow, read_regular, write_atomic

SCHEMA = 1
RECORDS = RECORDS_FILE
CONFIG = CONFIG_FILE
SUMMARY = "summary.json"
IDENTITY = IDENTITY_FILE  # written by ttslab.runner; compared and copied by merge_runs
INVOCATIONS = "invocations.jsonl"
LOCK = ".lock"
OWN_FILES = (RECORDS, CONFIG, SUMMARY, IDENTITY, INVOCATIONS, LOCK)
# what Hydra puts in a run directory besides ttslab's files (its config copies, the job log)
HYDRA_FILES = (".hydra", "ttslab.log")
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
        fd = open_nofollow(p / LOCK, os.O_RDWR | os.O_CREAT)
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
    if rec["budget"] < 1:
        raise InputError(f"{where}: budget {rec['budget']}; a record's budget is an integer >= 1 (delete this line)")
    schema = rec.get("schema", SCHEMA)
    if not isinstance(schema, int) or schema > SCHEMA:
        raise InputError(f"{where}: record schema {schema!r}; this ttslab reads schema <= {SCHEMA} (upgrade ttslab)")


def _parse(p: Path) -> tuple[list[dict[str, Any]], int | None]:
    """The records of a records.jsonl, and the byte offset of a torn last line (None: no torn tail)."""
    try:
        data = read_regular(p)
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
        rec["_line"] = n
        out.append(rec)
    return out, None


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All complete records of a run directory (or a records.jsonl file); a torn last line is skipped.

    A directory without records.jsonl has none; a path that does not exist, a damaged line or a line of
    another schema is an `InputError` naming the file and line."""
    p = _records_file(path)
    if not p.exists() and not p.is_symlink():
        return []
    return _unique(_parse(p)[0])


def _unique(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each record key once, the first line winning (as a resume would: later copies are never written)."""
    seen: set[tuple] = set()
    out = []
    for r in records:
        r.pop("_line", None)
        key = record_key(r)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def check_records(run_dir: str | os.PathLike) -> int:
    """Validate every line of a run directory's records up front (before loading any model): readable,
    and holding every field the results table reads (`ttslab.records.summary_problem`).

    Returns the number of complete records (0 for a directory not written yet); raises `InputError`
    with file:line for anything a resume or the final summary would fail on later."""
    p = Path(run_dir)
    if not p.exists():
        return 0
    if not p.is_dir():
        raise InputError(f"run directory {p} is a file; expected a directory")
    check_run_dir_contents(p)
    if not (p / RECORDS).exists():
        return 0
    records = _parse(p / RECORDS)[0]
    for r in records:
        problem = summary_problem(r)
        if problem:
            raise InputError(f"{p / RECORDS}:{r['_line']}: record lacks what the results table needs ({problem}); "
                             "records.jsonl is damaged: restore it, or delete this line to recompute its record")
    return len(_unique(records))


def check_run_dir_contents(run_dir: str | os.PathLike) -> None:
    """Refuse a run directory that holds what ttslab never makes there: one of its file names as a
    symlink, FIFO, directory or device; any FIFO, socket or device at all; or files of something else
    (a non-empty folder without any ttslab file: run_dir=. in a project, say)."""
    p = Path(run_dir)
    try:
        entries = list(os.scandir(p))
    except OSError as e:
        raise InputError(f"run directory {p}: cannot list it ({e.strerror or e})") from None
    names = {e.name for e in entries}
    for e in entries:
        st = e.stat(follow_symlinks=False)
        own = e.name in OWN_FILES
        if (own and not stat.S_ISREG(st.st_mode)) or not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)
                                                          or stat.S_ISLNK(st.st_mode)):
            raise InputError(f"run directory {p}: {e.name} is {kind(st.st_mode)}, which ttslab never makes there; "
                             "remove it, or choose another run_dir")
    others = names - set(OWN_FILES) - set(HYDRA_FILES) - {n for n in names if n.startswith(".records.jsonl.")}
    if others and not names & set(OWN_FILES) - {LOCK}:
        shown = ", ".join(sorted(others)[:3]) + (", ..." if len(others) > 3 else "")
        raise InputError(f"run_dir={str(p)!r} already holds files that are not a ttslab run's ({shown}); "
                         "choose an empty or new directory for the run, e.g. run_dir=runs/my-run")


# ------------------------------------------------------------------------------------------- writing


def _atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` by `data` whole: temporary file and rename, never through a symlink (ttslab.writes)."""
    write_atomic(path, data)


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
            check_writable_name(self.path)  # a planted link or FIFO is refused before it is read
            records: list[dict[str, Any]] = []
            if self.path.exists() or self.path.is_symlink():
                records, torn = _parse(self.path)
                if torn is not None:  # drop the interrupted record's bytes: it is redone
                    _atomic_write(self.path, read_regular(self.path)[:torn])
            self.done: set[tuple] = {record_key(r) for r in records}
            self._f = open_append(self.path)
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

    Everything is checked before anything is written: each shard's records (as preflight does), and
    the shards' identities, compared whole with each other and with the output's when it exists (a
    shard of another experiment, or an output holding another experiment's records, is refused naming
    the differing keys). Holds the lock of the output directory, and of each shard while reading it (a
    shard still being written is refused). An output directory this call created is removed again if
    the merge fails, so a failed merge leaves nothing half-made."""
    from ttslab.errors import ConfigError

    out = Path(out_dir)
    shard_dirs = [Path(d) for d in shard_dirs]
    identities = []
    for d in shard_dirs:
        if not (d / RECORDS).is_file():
            raise InputError(f"shard {d}: no {RECORDS} there; expected a run directory written by `ttslab run`")
        check_records(d)
        ident = read_identity(d)
        if ident is None:
            raise InputError(f"shard {d}: no {IDENTITY}, so what made its records cannot be compared with the other "
                             "shards'; merge only run directories written by `ttslab run`")
        identities.append(ident)
    for d, ident in zip(shard_dirs[1:], identities[1:]):
        diff = identity_difference(identities[0], ident)
        if diff:
            raise ConfigError(f"shards {shard_dirs[0]} and {d} come from different experiments ("
                              f"{describe_difference(identities[0], ident, diff, f'in {shard_dirs[0]}', f'in {d}')}); "
                              "merge only the shards (shard=i/k) of one command")
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise InputError(f"merge output {out} is {kind(os.lstat(out).st_mode)}; expected a directory (new, or a "
                             "run of the same experiment)")
        check_run_dir_contents(out)
        has_records = (out / RECORDS).exists() and (out / RECORDS).stat().st_size > 0
        old = read_identity(out)
        if old is None and has_records:
            raise InputError(f"merge output {out} holds records but no {IDENTITY}, so they cannot be compared with "
                             "the shards'; merge into a new directory")
        if old is not None:
            diff = identity_difference(old, identities[0])
            if diff:
                raise ConfigError(f"merge output {out} holds records of another experiment ("
                                  f"{describe_difference(old, identities[0], diff, 'there', 'in the shards')}); "
                                  "merge into a new directory")
    shard_records = []
    for d in shard_dirs:  # a shard still being written is refused; a read-only shard cannot be, so needs no lock
        with lock_run_dir(d) if os.access(d, os.W_OK) else contextlib.nullcontext():
            shard_records.append(read_records(d))
    missing = [p for p in [out, *out.parents] if not p.exists()]
    try:
        with lock_run_dir(out):
            if not (out / IDENTITY).exists():
                write_atomic(out / IDENTITY, json.dumps(identities[0], indent=1) + "\n")
            src = next((d / CONFIG for d in shard_dirs if (d / CONFIG).is_file()), None)
            if src is not None and not (out / CONFIG).exists():
                write_atomic(out / CONFIG, read_regular(src))
            with RecordWriter(out) as w:
                for records in shard_records:
                    for rec in records:
                        rec.pop("schema", None)
                        w.write(rec)
            return len(read_records(out))
    except BaseException:
        remove_created(missing)
        raise


def remove_created(created: list[Path]) -> None:
    """Undo the directories a failed command created (deepest first): `created` lists the ones that did
    not exist before it started. The deepest (the run directory) goes with what the command put in it;
    its parents only if they are empty."""
    import shutil

    for i, d in enumerate(created):
        try:
            if i == 0:
                shutil.rmtree(d)
            else:
                d.rmdir()
        except OSError:
            return


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
