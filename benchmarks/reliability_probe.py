"""Reliability probe: feed bad inputs and faults to ttslab's data, records, model-file and grading APIs.

Prints one row per input: handled (a ttslab error naming the file/line/field and what to do, or the
intended recovery) or failed (a traceback-class exception, a vague message, or silent acceptance).

    python benchmarks/reliability_probe.py [--shared-data ../shared/data]

Needs no model and no network; runs in a temporary directory with a private ttslab cache (a minute).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # read when huggingface_hub is imported: no retries to a hub
ROWS: list[tuple[str, str, str, str]] = []


def row(area: str, what: str, ok: bool, message: str) -> None:
    ROWS.append((area, what, "handled" if ok else "FAILED", " ".join(str(message).split())))


def expect(area: str, what: str, fn, error: type, *needles: str) -> None:
    """Handled if `fn` raises `error` whose message contains every needle."""
    try:
        out = fn()
    except error as e:
        missing = [n for n in needles if n not in str(e)]
        row(area, what, not missing, str(e) if not missing else f"message lacks {missing}: {e}")
        return
    except Exception as e:  # noqa: BLE001 - the probe reports whatever escapes
        row(area, what, False, f"{type(e).__name__}: {e}")
        return
    row(area, what, False, f"accepted silently (returned {str(out)[:60]!r})")


def check(area: str, what: str, fn) -> None:
    """Handled if `fn` returns (True, message)."""
    try:
        ok, msg = fn()
    except Exception as e:  # noqa: BLE001
        ok, msg = False, f"{type(e).__name__}: {e}"
    row(area, what, ok, msg)


def probe_datasets(tmp: Path, shared: Path | None) -> None:
    from ttslab.errors import ConfigError, InputError
    from ttslab.problems import load_problems

    good = {"problem": "1+1?", "answer": "2", "level": 1, "unique_id": "a", "subject": "x"}

    def file(name: str, content: bytes | list) -> Path:
        p = tmp / "data" / name
        p.parent.mkdir(exist_ok=True)
        if isinstance(content, list):
            content = b"".join(c if isinstance(c, bytes) else (json.dumps(c) + "\n").encode() for c in content)
        p.write_bytes(content)
        return p

    def g(i, **kw):
        return {k: v for k, v in {**good, "unique_id": f"id{i}", **kw}.items() if v is not ...}

    cases = [
        ("empty file", file("empty.jsonl", b""), InputError, ["empty.jsonl", "empty"]),
        ("whitespace only", file("blank.jsonl", b"\n  \n"), InputError, ["blank.jsonl", "empty"]),
        ("malformed JSON on line 3", file("bad.jsonl", [g(1), g(2), b'{"problem": \n']), InputError, ["bad.jsonl:3"]),
        ("random bytes (.jsonl)", file("noise.jsonl", random.Random(0).randbytes(4096)), InputError, ["noise.jsonl"]),
        ("random bytes (.parquet)", file("noise.parquet", random.Random(0).randbytes(4096)), InputError, ["noise.parquet"]),
        ("missing answer on line 2", file("noans.jsonl", [g(1), g(2, answer=...)]), InputError, ["noans.jsonl:2", "'answer'"]),
        ("missing question on line 2", file("noq.jsonl", [g(1), g(2, problem=...)]), InputError, ["noq.jsonl:2", "'problem'"]),
        ("level of wrong type", file("lvl.jsonl", [g(1, level="hard")]), InputError, ["lvl.jsonl:1", "'level'"]),
        ("answer is a list", file("lst.jsonl", [g(1, answer=["2"])]), InputError, ["lst.jsonl:1", "'answer'"]),
        ("field type changes", file("mix.jsonl", [g(1), g(2, subject=3)]), InputError, ["mix.jsonl:2", "'subject'"]),
        ("a line that is a list", file("arr.jsonl", [g(1), b"[1]\n"]), InputError, ["arr.jsonl:2", "JSON object"]),
        ("duplicate problem ids", file("dup.jsonl", [g(1), g(1)]), InputError, ["'id1'", "twice"]),
        ("unknown columns", file("odd.jsonl", [{"q": "1", "a": "2"}]), InputError, ["odd.jsonl", "dataset.format"]),
        ("missing file", tmp / "data" / "nope.jsonl", InputError, ["nope.jsonl", "not found"]),
        ("a directory as the file", str(tmp / "data") + "/", InputError, ["not a file"]),
    ]
    for what, path, err, needles in cases:
        expect("dataset", what, lambda p=path: load_problems(str(p)), err, *needles)
    if shared is not None:
        m = str(shared / "math500.jsonl")
        expect("dataset", "levels=[9] matches nothing", lambda: load_problems(m, levels=[9]), ConfigError,
               "dataset.levels", "levels present")
        expect("dataset", "limit=501 beyond 500", lambda: load_problems(m, limit=501), ConfigError, "dataset.limit=501")
        expect("dataset", "limit=0", lambda: load_problems(m, limit=0), ConfigError, "dataset.limit=0")
        expect("dataset", "ids not in the dataset", lambda: load_problems(m, ids=["nope"]), ConfigError, "dataset.ids")
        expect("dataset", "levels on AIME (no levels)", lambda: load_problems(str(shared / "aime24.jsonl"), levels=[1]),
               ConfigError, "no levels")


HOLDER = """
import sys
from ttslab.results import lock_run_dir
with lock_run_dir(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()
"""


def probe_records(tmp: Path) -> None:
    from ttslab.errors import InputError
    from ttslab.results import RECORDS, RecordWriter, Run, check_records, lock_run_dir, merge_runs, read_records

    rec = {"problem_id": "p", "method": "cot", "budget": 1, "candidates": [], "selections": {}}
    line = (json.dumps(rec) + "\n").encode()

    def run(name: str, *lines: bytes) -> Path:
        d = tmp / "runs" / name
        d.mkdir(parents=True, exist_ok=True)
        (d / RECORDS).write_bytes(b"".join(lines))
        return d

    d = run("garbage", line, b"{oops\n", line)
    expect("records", "garbage middle line (rerun check)", lambda: check_records(d), InputError, f"{RECORDS}:2")
    d2 = run("bytes", line, random.Random(1).randbytes(300).replace(b"\n", b"") + b"\n")
    expect("records", "random bytes line", lambda: read_records(d2), InputError, f"{RECORDS}:2")
    d3 = run("schema", line, (json.dumps({"problem_id": "p", "answer": 1}) + "\n").encode())
    expect("records", "line of another schema", lambda: read_records(d3), InputError, f"{RECORDS}:2", "'method'")
    d4 = run("type", (json.dumps({**rec, "budget": "4"}) + "\n").encode())
    expect("records", "budget of wrong type", lambda: Run.load(d4), InputError, f"{RECORDS}:1", "'budget'")
    d5 = run("newer", (json.dumps({**rec, "schema": 99}) + "\n").encode())
    expect("records", "record of a newer schema", lambda: read_records(d5), InputError, "schema 99")
    expect("records", "Run.load of a mistyped directory", lambda: Run.load(tmp / "runs" / "typo"), InputError, "does not exist")
    (tmp / "runs" / "plain").mkdir()
    expect("records", "Run.load of a directory without records", lambda: Run.load(tmp / "runs" / "plain"), InputError,
           "no records.jsonl")
    expect("records", "read_records of a mistyped path", lambda: read_records(tmp / "runs" / "typo2"), InputError,
           "no such run directory")

    def torn():
        d = run("torn", line, line[:-9])
        ino = (d / RECORDS).stat().st_ino
        n = check_records(d)
        with RecordWriter(d):
            pass
        data = (d / RECORDS).read_bytes()
        ok = n == 1 and data == line and (d / RECORDS).stat().st_ino != ino
        return ok, f"torn last line skipped ({n} record), repaired by rename (inode changed: {(d / RECORDS).stat().st_ino != ino})"
    check("records", "torn last line (kill during write)", torn)

    lock_dir = tmp / "runs" / "locked"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock_dir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"

    def second_writer():
        with lock_run_dir(lock_dir):
            return "locked twice"
    expect("records", "second writer on a run directory", second_writer, InputError, str(lock_dir), f"pid {proc.pid}")
    expect("records", "RecordWriter while another process writes", lambda: RecordWriter(lock_dir), InputError,
           f"pid {proc.pid}")
    shard = run("shard", line)
    expect("records", "merge into a directory being written", lambda: merge_runs([shard], lock_dir), InputError,
           f"pid {proc.pid}")
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    def after_kill():
        with RecordWriter(lock_dir) as w:
            w.write(rec)
        return True, f"lock of the killed pid {proc.pid} gone with it; next writer proceeds"
    check("records", "stale lock of a kill -9'ed writer", after_kill)
    expect("records", "merge of a missing shard", lambda: merge_runs([tmp / "runs" / "nope"], tmp / "runs" / "m"),
           InputError, "nope", "no records.jsonl")


def probe_models(tmp: Path) -> None:
    import ttslab.models as models
    from ttslab.models import EMBEDDED, EmbeddedModel, ModelError, ModelRepaired, resolve

    d = tmp / "models"
    d.mkdir()
    data = b"GGUF" + random.Random(2).randbytes(24 << 20)
    f = d / "m.gguf"
    f.write_bytes(data)
    pin = hashlib.sha256(data).hexdigest()

    def zero_keep_mtime(path: Path, offset: int, n: int) -> None:
        st = path.stat()
        with path.open("r+b") as fh:
            fh.seek(offset)
            fh.write(b"\0" * n)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

    expect("model", "missing local file", lambda: resolve(str(d / "nope.gguf")), ModelError, "nope.gguf", "does not exist")
    (d / "zip.gguf").write_bytes(b"PK\x03\x04....")
    expect("model", "not a GGUF file", lambda: resolve(str(d / "zip.gguf")), ModelError, "not a GGUF file")
    (d / "trunc.gguf").write_bytes(data[: len(data) // 2])
    expect("model", "truncated GGUF, pinned", lambda: resolve(f"{d / 'trunc.gguf'}#sha256={pin}"), ModelError,
           "trunc.gguf", "pins")
    resolve(f"{f}#sha256={pin}")
    zero_keep_mtime(f, 10 << 20, 4 << 20)
    expect("model", "4 MB of zeros written, mtime restored", lambda: resolve(f"{f}#sha256={pin}"), ModelError,
           str(f), "refusing")
    expect("model", "malformed #sha256= pin", lambda: resolve(f"{f}#sha256=abc"), ModelError, "64 hexadecimal")
    expect("model", "unknown embedded model", lambda: resolve("embedded:nope"), ModelError, "available")
    expect("model", "malformed hf: spec", lambda: resolve("hf:just-a-name"), ModelError, "hf:<owner>/<repo>")
    expect("model", "hf: spec with revision+pin, no hub", lambda: resolve(f"hf:o/r/f.gguf@v2#sha256={pin}"), ModelError,
           "o/r@v2", "could not download")

    ro = d / "ro"
    ro.mkdir()
    (ro / "m.gguf").write_bytes(data)
    ro.chmod(0o555)

    def read_only():
        before = sorted(os.listdir(ro))
        resolve(f"{ro / 'm.gguf'}#sha256={pin}")
        resolve(f"{ro / 'm.gguf'}#sha256={pin}")
        return sorted(os.listdir(ro)) == before, "pinned GGUF in a read-only directory loads; stamp kept in the cache"
    check("model", "pinned GGUF in a read-only directory", read_only)
    ro.chmod(0o755)

    pkg = tmp / "site" / "probeparts"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "data" / "p1.bin").write_bytes(data[:1000])
    (pkg / "data" / "p2.bin").write_bytes(data[1000:])
    sys.path.insert(0, str(tmp / "site"))
    EMBEDDED["probe"] = EmbeddedModel("probe", "cpu", (("probeparts", "p1.bin"), ("probeparts", "p2.bin")), pin, len(data))
    cached = resolve("embedded:probe")

    def repaired():
        zero_keep_mtime(cached, 5 << 20, 1 << 20)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            resolve("embedded:probe")
        said = [str(x.message) for x in w if issubclass(x.category, ModelRepaired)]
        return bool(said) and models.sha256_of(cached) == pin, said[0] if said else "no warning"
    check("model", "damaged cached embedded model", repaired)
    zero_keep_mtime(cached, 5 << 20, 1 << 20)
    (pkg / "data" / "p2.bin").unlink()
    expect("model", "damaged embedded model, wheels gone", lambda: resolve("embedded:probe"), ModelError,
           f"Delete {cached}")


def probe_grading(shared: Path | None) -> None:
    from ttslab.grading import Grader, extract_answer

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from helpers_grading import never_returns, rewritings, slow_true

    for what, text in [("1 MB of unclosed 'final answer is: $x'", "The final answer is: $x" * 45_000),
                       ("1 MB of 'final answer is $1$' without I hope", "final answer is $1$ " * 50_000),
                       ("1 MB answer line", "the answer is " + "7" * 1_000_000)]:
        def run(t=text):
            s = time.perf_counter()
            extract_answer(t)
            e = time.perf_counter() - s
            return e < 1.0, f"extracted in {e * 1000:.1f} ms"
        check("grading", what, run)

    def budget():
        with Grader(timeout=5.0, budget=2.0, check=slow_true) as g:
            g.equivalent("warm", "up")
            s = time.perf_counter()
            g.grade("g", [f"a{i}" for i in range(8)])
            e = time.perf_counter() - s
            r = g.last_report
        return r["budget_exhausted"] and e < 5.0, f"8 distinct 0.5-s answers in {e:.1f} s: {r}"
    check("grading", "many slow checks, 2 s problem budget", budget)

    def hang():
        with Grader(timeout=1.5, check=never_returns) as g:
            g.equivalent("warm", "up")  # times out too (the check never returns)
            s = time.perf_counter()
            _, ok = g.grade("1", ["2"])
            e = time.perf_counter() - s
            r = g.last_report
        return ok == [False] and r["timed_out"] == 1 and e < 10, f"hanging check cut after {e:.1f} s: {r}"
    check("grading", "a check that never returns", hang)

    def overlong():
        with Grader() as g:
            _, ok = g.grade("5", ["5", "5 + x" * 500])
            r = g.last_report
        return ok == [True, False] and r["truncated_answers"] == 1, f"{r}"
    check("grading", "a 2.5 KB answer", overlong)

    def dollars():
        with Grader() as g:
            res = {gold: g.grade(gold, [gold, gold.replace("\\$", "")])[1] for gold in [r"\$18.90", r"\$36", r"\$32,\!348"]}
        return all(all(v) for v in res.values()), f"{res}"
    check("grading", r"escaped-dollar golds (\$18.90, \$36, \$32,\!348)", dollars)
    if shared is not None:
        def golds():
            gs = [json.loads(x)["answer"] for x in (shared / "math500.jsonl").open()]
            gs += [str(json.loads(x)["answer"]) for x in (shared / "aime24.jsonl").open()]
            pairs = [(gd, r) for gd in gs for r in rewritings(gd)]
            s = time.perf_counter()
            with Grader(workers=2, budget=None) as g:
                ok = g.equivalent_many(pairs)
            misses = [p for p, v in zip(pairs, ok) if not v]
            return not misses, f"{len(pairs) - len(misses)}/{len(pairs)} pairs verify ({time.perf_counter() - s:.1f} s) {misses[:3]}"
        check("grading", "every MATH-500/AIME24 gold vs itself and rewritings", golds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared-data", type=Path, default=Path(__file__).resolve().parent.parent.parent / "shared" / "data")
    args = ap.parse_args()
    shared = args.shared_data if (args.shared_data / "math500.jsonl").exists() else None
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        os.environ["TTSLAB_CACHE"] = str(tmp / "cache")
        probe_datasets(tmp, shared)
        probe_records(tmp)
        probe_models(tmp)
        probe_grading(shared)
    width = max(len(r[1]) for r in ROWS)
    print("| area | input | result | message |\n|---|---|---|---|")
    for area, what, result, msg in ROWS:
        print(f"| {area} | {what:<{width}} | {result} | {msg[:150]} |")
    failed = sum(r[2] == "FAILED" for r in ROWS)
    print(f"\n{len(ROWS)} inputs: {len(ROWS) - failed} handled, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
