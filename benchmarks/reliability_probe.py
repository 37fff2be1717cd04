"""Reliability probe: feed bad inputs and faults to ttslab's data, records, model-file and grading APIs.

Prints one row per input and a verdict: handled (a ttslab error naming the file/line/field and what to do,
or the intended recovery), message-in-traceback (a traceback, whatever its message), wrong-or-silent (a
wrong exit code, a vague message, or silent acceptance), data loss (a file the user had changed), security
(a planted link followed, a secret written), hang (no answer within the timeout); then the counts.

    python benchmarks/reliability_probe.py [--shared-data ../shared/data] [--only-cli]

The command-line cases (issue 21) run `ttslab` in subprocesses as a new user would, on copies of the shipped
run directories; none loads a model (the installed embedded model is only hashed). No network; the API
cases run in a temporary directory with a private ttslab cache. A few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import re
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
    from ttslab.results import (
        RECORDS,
        RecordWriter,
        Run,
        check_records,
        lock_run_dir,
        merge_runs,
        read_records,
    )

    usage = {"prompt_tokens": 1, "cached_tokens": 0, "completion_tokens": 1}
    rec = {"problem_id": "p", "method": "cot", "budget": 1, "candidates": [],
           "selections": {"oracle": {"answer": None, "correct": False}}, "usage": {"policy": usage, "prm": usage}}
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
    (shard / "identity.json").write_text("{}")
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
    from ttslab import models
    from ttslab.models import EMBEDDED, EmbeddedModel, ModelError, ModelRepaired, resolve

    d = tmp / "models"
    d.mkdir()
    data = b"GGUF" + (3).to_bytes(4, "little") + bytes(16) + random.Random(2).randbytes(24 << 20)  # a header of no tensors
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


# ------------------------------------------------------------------------ the command line, as a new user
TRACEBACK = "Traceback (most recent call last)"
VERDICTS = ("handled", "message-in-traceback", "wrong-or-silent", "data loss", "security", "hang")
USER_ENV = dict(os.environ)  # the user's own model cache: subprocesses hash the installed model, never re-assemble it


def cli(area: str, what: str, argv: list[str], needles: tuple[str, ...] = (), code: int = 2, cwd: Path | None = None,
        guard=None, timeout: float = 120, env: dict | None = None, runner: list[str] | None = None) -> None:
    """Run `ttslab ARGV` in a subprocess; the verdict: hang (timeout), what `guard()` finds (data loss or
    security: a victim file changed, a secret written), a traceback, a wrong exit code or a message without
    the needles (wrong-or-silent), else handled."""
    cmd = (runner or [sys.executable, "-m", "ttslab.cli"]) + argv
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=timeout, check=False,
                              env={**USER_ENV, "TTSLAB_TRACEBACK": "0", **(env or {})}, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        verdict(area, what, "hang", f"no answer after {timeout:.0f} s: {' '.join(argv)[:80]}")
        if guard is not None:
            guard()
        return
    out = proc.stdout + proc.stderr
    last = (proc.stderr.strip().splitlines() or [""])[-1]
    found = guard() if guard is not None else None
    if found:
        verdict(area, what, found[0], found[1])
    elif TRACEBACK in out:
        verdict(area, what, "message-in-traceback", f"exit {proc.returncode}: {last}")
    elif proc.returncode != code or any(n not in out for n in needles):
        lacking = [n for n in needles if n not in out]
        verdict(area, what, "wrong-or-silent", f"exit {proc.returncode} (expected {code})"
                + (f", message lacks {lacking}" if lacking else "") + f": {last or proc.stdout[-120:]}")
    else:
        verdict(area, what, "handled", last or proc.stdout.strip().splitlines()[-1])


def verdict(area: str, what: str, result: str, message: str) -> None:
    assert result in VERDICTS, result
    ROWS.append((area, what, result, " ".join(str(message).split())))


def keeps(path: Path, kind: str = "data loss"):
    """A guard: `path` keeps its bytes (None), else (kind, message)."""
    before = path.read_bytes() if path.exists() else None

    def guard():
        now = path.read_bytes() if path.exists() else None
        return None if now == before else (kind, (f"{path} changed ({0 if now is None else len(now)} bytes now, "
                                                 f"{0 if before is None else len(before)} before)"))
    return guard


def no_secret(root: Path, secrets: tuple[str, ...]):
    """A guard: no file under `root`, and no file name, holds any of the secrets."""
    def guard():
        for p in root.rglob("*"):
            if any(s in p.name for s in secrets):
                return "security", f"a secret names {p}"
            if p.is_file() and not p.is_symlink():
                text = p.read_bytes()
                for s in secrets:
                    if s.encode() in text:
                        return "security", f"{s} written into {p}"
        return None
    return guard


def both(*guards):
    def guard():
        return next((g() for g in guards if g() is not None), None)
    return guard


def probe_cli(tmp: Path, shared: Path | None) -> None:
    """The cases of issue 21 as a new user meets them: every one before any model loads, or on copies of
    the shipped run directories."""
    import shutil

    from ttslab import study

    shipped = {p.name: p for p in study.study_run_dirs()}
    home = tmp / "cli"
    home.mkdir()
    victim = home / "victim.txt"
    victim.write_bytes(b"the user's own file\n")

    def copy(name: str, as_: str) -> Path:
        d = Path(shutil.copytree(shipped[name], home / as_))
        (d / ".lock").unlink(missing_ok=True)  # (a run or merge of the shipped directory leaves its lock file)
        return d

    # 1. planted symlinks: the victim keeps its bytes
    s = copy("bundled", "s-lock")
    (s / ".lock").symlink_to(victim)
    cli("symlink", "merge of a shard whose .lock links elsewhere", ["merge", str(home / "out1"), str(s)],
        ("symbolic link",), guard=keeps(victim, "security"))
    cli("symlink", "run into a directory whose .lock links elsewhere", ["run", f"run_dir={s}", "progress=false"],
        ("symbolic link",), guard=keeps(victim, "security"))
    out = home / "out-summary"
    out.mkdir()
    (out / "summary.json").symlink_to(victim)
    cli("symlink", "merge output with a linked summary.json", ["merge", str(out), str(shipped["bundled"])],
        ("symbolic link",), guard=keeps(victim, "security"))
    s = copy("bundled", "s-records")
    (s / "records.jsonl").unlink()
    (s / "records.jsonl").symlink_to(victim)
    cli("symlink", "run with records.jsonl linked elsewhere", ["run", f"run_dir={s}", "progress=false"],
        ("symbolic link",), guard=keeps(victim, "security"))
    (home / "linked.parquet").symlink_to(victim)
    cli("symlink", "export --out a link", ["export", str(shipped["bundled"]), "--out", str(home / "linked.parquet"),
                                           "--force"], ("symbolic link",), guard=keeps(victim, "security"))
    figs = home / "figs-link"
    figs.mkdir()
    (figs / "README.md").symlink_to(victim)
    cli("symlink", "figures --out with a linked README.md", ["figures", "--reference-only", "--out", str(figs),
                                                             "--force"], ("link",), guard=keeps(victim, "security"))

    # 2. output commands never delete or overwrite what they did not write
    run_copy = copy("bundled", "export-into")
    cli("outputs", "export --out RUN/records.jsonl", ["export", str(run_copy), "--out", str(run_copy / "records.jsonl")],
        ("inside the run directory",), guard=keeps(run_copy / "records.jsonl"))
    docs = home / "docs"
    docs.mkdir()
    (docs / "README.md").write_text("# my project\n")
    cli("outputs", "figures --reference-only --out DIR over a README it did not write",
        ["figures", "--reference-only", "--out", str(docs)], ("--force",), guard=keeps(docs / "README.md"))
    mine = home / "mine.parquet"
    mine.write_text("my notes")
    cli("outputs", "export over a file it did not write", ["export", str(shipped["bundled"]), "--out", str(mine)],
        ("--force",), guard=keeps(mine))
    cli("outputs", "export --out a directory", ["export", str(shipped["bundled"]), "--out", str(home)],
        ("is a directory",))
    cli("outputs", "figures with a missing run directory (no --out made)",
        ["figures", str(home / "typo"), "--out", str(home / "never")], ("does not exist",),
        guard=lambda: ("wrong-or-silent", "--out was created") if (home / "never").exists() else None)
    cli("outputs", "figures --out a file", ["figures", "--reference-only", "--out", str(mine)], ("a file",),
        guard=keeps(mine))

    def site_keeps_src():
        from ttslab.errors import InputError
        from ttslab.site import stage

        proj = home / "project"
        code = proj / "src" / "pkg" / "__init__.py"
        code.parent.mkdir(parents=True)
        code.write_text("x = 1\n")
        (proj / "src" / "conf.py").write_text("# my sphinx config\n")
        try:
            stage(proj / "src", {})
        except InputError as e:
            kept = code.read_text() == "x = 1\n" and (proj / "src" / "conf.py").read_text() == "# my sphinx config\n"
            return kept, f"{e} (the project's files kept: {kept})"
        return False, "staged over a project's src/"
    check("outputs", "site --out a project with a src/ layout", site_keeps_src)

    # 3. secrets: nothing written or printed holds them
    secrets = ("hf_PROBE_TOKEN_1", "sk_PROBE_KEY_2")
    sweep = home / "sweep"
    cli("secrets", "sweep with +engine.launch.env.HF_TOKEN and engine.policy.api_key",
        ["run", "-m", "engine=sglang", "method=beam_search", "prm=none", "method.budget=4,8",
         f"+engine.launch.env.HF_TOKEN={secrets[0]}", f"engine.policy.api_key={secrets[1]}",
         f"hydra.sweep.dir={sweep}", f"run_dir={sweep}/runs/${{hydra:job.num}}"],
        ("need a PRM",), code=2, cwd=home, guard=no_secret(home, secrets))

    def config_redacted():
        from ttslab import runner
        from ttslab.config import compose, validate
        from ttslab.problems import load_problems

        d = home / "secret-run"
        d.mkdir()
        cfg = compose(["engine=sglang", "method=cot", f"run_dir={d}", "engine.launch.env='HF_TOKEN=hf_PROBE_STRING_3'",
                       f"engine.policy.api_key={secrets[1]}"])
        plan_cls = getattr(runner, "RunPlan", None) or runner.Plan
        runner._write_run_files(plan_cls(cfg, validate(cfg), load_problems("bundled", limit=1), False, d, {}))
        leaked = [s for s in (*secrets, "hf_PROBE_STRING_3") for p in d.iterdir() if s in p.read_text()]
        return not leaked, f"config.yaml, identity.json, invocations.jsonl: {'leaked ' + str(leaked) if leaked else 'no secret'}"
    check("secrets", "api_key and a string-form engine.launch.env in config.yaml/invocations", config_redacted)

    # 4. identities compared whole, in run and in merge
    if "math500_levels" in shipped:
        cli("identity", "merge bundled (judge) with math500_levels (confidence)",
            ["merge", str(home / "mixed"), str(shipped["bundled"]), str(shipped["math500_levels"])],
            ("different experiments", "prm.name"),
            guard=lambda: ("wrong-or-silent", "half-made output left") if (home / "mixed").exists() else None)
        other = copy("math500_levels", "other-exp")
        cli("identity", "merge into an existing run of another experiment", ["merge", str(other), str(shipped["bundled"])],
            ("another experiment",), guard=keeps(other / "records.jsonl"))
    s = copy("bundled", "rerun-prm")
    cli("identity", "rerun with another PRM", ["run", f"run_dir={s}", "prm=cpu_confidence", "progress=false"],
        ("prm.name",), guard=keeps(s / "records.jsonl"))
    cli("identity", "rerun with another seed", ["run", f"run_dir={s}", "prm=cpu_judge", "seed=3", "progress=false"],
        ("seed",), guard=keeps(s / "records.jsonl"))
    cot = copy("bundled", "cot-dir")
    ident = json.loads((cot / "identity.json").read_text())
    ident.update({k: None for k in ident if k.startswith("prm.")} | {"prm.name": "none", "prm.type": "none"})
    (cot / "identity.json").write_text(json.dumps(ident))
    cli("identity", "a CoT-only (prm=none) directory, then dvts with the judge",
        ["run", f"run_dir={cot}", "method=dvts", "method.beam_width=2", "method.budget=4", "prm=cpu_judge",
         "progress=false"], ("prm.",), guard=keeps(cot / "records.jsonl"))
    bare = copy("bundled", "no-identity")
    (bare / "identity.json").unlink()
    (bare / "config.yaml").unlink()
    cli("identity", "identity.json and config.yaml deleted", ["run", f"run_dir={bare}", "progress=false"],
        ("no identity.json",), guard=keeps(bare / "records.jsonl"))
    lst = copy("bundled", "identity-list")
    (lst / "identity.json").write_text("[1, 2]")
    cli("identity", "identity.json holding a list", ["run", f"run_dir={lst}", "progress=false"], ("identity.json",))
    garbage = copy("bundled", "garbage-config")
    (garbage / "identity.json").unlink()
    (garbage / "config.yaml").write_text("{{{: : [\n\t- x")
    cli("identity", "garbage config.yaml (no identity.json)", ["run", f"run_dir={garbage}", "progress=false"],
        ("config.yaml",))

    # 5. method overrides beside experiment= (H2's part of the issue; probed all the same)
    cli("config", "experiment=quickstart method.budget=-1", ["run", "experiment=quickstart", "method.budget=-1",
                                                            f"run_dir={home / 'neg'}"], ("budget",))

    # 6. preflight: engine ranges, model files, one line for every error
    for override in ("engine.max_sequences=0", "engine.n_ctx_per_sequence=8", "engine.n_threads=-3",
                     f"method.budget={10**30}", "method.budgets=[]"):
        key = {"method.budget": "budget="}.get(override.split("=")[0], override.split("=")[0])
        cli("preflight", override, ["run", "method=best_of_n", override, f"run_dir={home / 'ranges'}",
                                    "progress=false"], (key,))
    models = home / "models"
    models.mkdir()
    (models / "stub.gguf").write_bytes(b"GGUF")
    real = None
    with contextlib.suppress(Exception):
        from ttslab.models import resolve

        real = resolve("embedded:qwen2.5-coder-0.5b")
    if real is not None:
        with real.open("rb") as f:
            (models / "cut.gguf").write_bytes(f.read(8 << 20))
    os.mkfifo(models / "fifo.gguf")
    for name, what, needle in (("stub.gguf", "a 4-byte file starting GGUF", "truncated"),
                               ("cut.gguf", "a truncated GGUF (no pin)", "truncated"),
                               (str(models), "a directory as the model", "is a directory"),
                               ("fifo.gguf", "a FIFO as the model", "FIFO"),
                               ("/dev/zero", "/dev/zero as the model", "character device")):
        if name == "cut.gguf" and real is None:
            continue
        path = name if name.startswith("/") else str(models / name)
        cli("preflight", what, ["run", "method=cot", "prm=none", f"policy.model='{path}'", f"run_dir={home / 'm'}",
                                "progress=false"], (needle,), timeout=60)
    nan = home / "nan.jsonl"
    nan.write_text(json.dumps({"problem": "1+1?", "answer": "nan", "unique_id": "a"}) + "\n")
    cli("preflight", "a NaN gold answer", ["run", "method=cot", "prm=none", f"dataset.path={nan}", "dataset.levels=null",
                                           "dataset.ids=null", f"run_dir={home / 'nan-run'}", "progress=false"],
        ("gold answer",))
    cli("preflight", "a bad override under -m", ["run", "-m", "method=nope"], ("method",), cwd=home)
    full = copy("bundled", "full-disk")
    cli("preflight", "a full disk during merge (ENOSPC from the writer)",
        ["merge", str(home / "merged-full"), str(full)], ("No space left", "free space"), code=2,
        runner=[sys.executable, "-c", ("import errno, sys\nimport ttslab.results as r\n"
                "def full(self, rec): raise OSError(errno.ENOSPC, 'No space left on device', str(self.path))\n"
                "r.RecordWriter.write = full\nfrom ttslab.cli import main\nsys.exit(main(sys.argv[1:]))")],
        guard=lambda: ("wrong-or-silent", "half-made merge output") if (home / "merged-full").exists() else None)
    cli("preflight", "a read-only file system for export", ["export", str(shipped["bundled"]), "--out",
                                                             str(home / "ro.parquet")], ("read-only",), code=2,
        runner=[sys.executable, "-c", ("import errno, sys\nimport ttslab.writes as w\n"
                "def ro(*a, **k): raise OSError(errno.EROFS, 'Read-only file system', a[0] if a else None)\n"
                "w.replace_with = ro\nimport ttslab.export as e\ne.replace_with = ro\n"
                "from ttslab.cli import main\nsys.exit(main(sys.argv[1:]))")])

    # 7. records
    def records_case(name: str, edit) -> Path:
        d = copy("bundled", name)
        lines = (d / "records.jsonl").read_text().splitlines()
        (d / "records.jsonl").write_text("\n".join(edit(lines)) + "\n")
        (d / "summary.json").unlink()
        return d

    def drop(key: str, sub: str | None = None):
        def edit(lines):
            rec = json.loads(lines[0])
            if sub:
                del rec[key][sub]
            else:
                del rec[key]
            return [json.dumps(rec), *lines[1:]]
        return edit

    d = records_case("no-usage", drop("usage"))
    cli("records", "a record without usage (ttslab summary)", ["summary", str(d)], ("usage",))
    cli("records", "a record without usage (preflight of a rerun)", ["run", f"run_dir={d}", "prm=cpu_judge",
                                                                    "progress=false"], ("usage",))
    d = records_case("no-oracle", drop("selections", "oracle"))
    cli("records", "a record without selections.oracle", ["summary", str(d)], ("oracle",))

    def summary_of(d: Path) -> dict:
        from ttslab.results import read_records
        from ttslab.summary import summary_table

        return summary_table(read_records(d), n_boot=10)

    base = summary_of(shipped["bundled"])

    def dup_case():
        d = records_case("dup", lambda lines: [*lines, lines[0]])
        return summary_of(d).equals(base), "a duplicated line is counted once"
    check("records", "a duplicated record line", dup_case)

    def dup_key_case():
        def edit(lines):
            cot = next(json.loads(x) for x in lines if json.loads(x)["method"] == "cot")
            return [*lines, json.dumps({**cot, "candidates": [],
                                        "selections": {k: {**v, "correct": not v["correct"]}
                                                       for k, v in cot["selections"].items()}})]
        d = records_case("dupkey", edit)
        return summary_of(d).equals(base), "a second record of the same key does not move CoT"
    check("records", "a duplicate-key record without candidates", dup_key_case)
    for budget in (0, -4):
        d = records_case(f"budget{budget}", lambda lines, b=budget: [*lines, json.dumps({**json.loads(lines[0]),
                                                                                       "budget": b})])
        cli("records", f"a record with budget {budget}", ["summary", str(d)], ("budget",))
    d = records_case("steps-str", lambda lines: [json.dumps({**json.loads(lines[0]), "candidates": [
        {**c, "steps": "".join(c["steps"])} for c in json.loads(lines[0])["candidates"]]}), *lines[1:]])
    cli("records", "a steps string in export", ["export", str(d), "--out", str(home / "steps.parquet")], ("steps",))
    d = records_case("level-str", lambda lines: [json.dumps({**json.loads(lines[0]), "level": "hard"}), *lines[1:]])
    cli("records", "a mistyped field in export (level 'hard')", ["export", str(d), "--out", str(home / "lvl.parquet")],
        ("wrong type",))
    for content, what in (("{not json", "a corrupt summary.json"), ("[1, 2]", "a list-typed summary.json"),
                          ('{"wall_time_s": "fast"}', "a mistyped summary.json")):
        d = copy("bundled", f"summary-{len(content)}")
        (d / "summary.json").write_text(content)
        cli("records", what, ["summary", str(d)], ("summary.json",))

    # 8. hangs and non-regular files
    fifo_run = home / "fifo-run"
    fifo_run.mkdir()
    os.mkfifo(fifo_run / "records.jsonl")
    cli("hang", "a FIFO named records.jsonl (ttslab run)", ["run", f"run_dir={fifo_run}", "progress=false"], ("FIFO",),
        timeout=60)
    cli("hang", "a FIFO named records.jsonl (ttslab summary)", ["summary", str(fifo_run)], ("FIFO",), timeout=60)
    cli("hang", "ttslab plan gpus=1000000000xH100", ["plan", "gpus=1000000000xH100"], ("gpus",), timeout=60)
    cli("config", "ttslab plan experiment=<unknown>", ["plan", "experiment=nope_xyz"], ("nope_xyz",), timeout=60)

    # 9. run directories that are not a run's own
    cli("run_dir", "run_dir= (empty)", ["run", "run_dir=", "progress=false"], ("run_dir",), cwd=home)
    cli("run_dir", "run_dir=/", ["run", "run_dir=/", "progress=false"], ("run_dir",))
    proj = home / "someproject"
    (proj / "src").mkdir(parents=True)
    (proj / "setup.py").write_text("")
    cli("run_dir", "run_dir= a folder of unrelated files", ["run", f"run_dir={proj}", "progress=false"],
        ("not a ttslab run's",), guard=lambda: ("data loss", "the folder changed")
        if sorted(p.name for p in proj.iterdir()) != ["setup.py", "src"] else None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared-data", type=Path, default=Path(__file__).resolve().parent.parent.parent / "shared" / "data")
    ap.add_argument("--only-cli", action="store_true", help="only the command-line cases (issue 21)")
    args = ap.parse_args()
    shared = args.shared_data if (args.shared_data / "math500.jsonl").exists() else None
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        probe_cli(tmp, shared)
        os.environ["TTSLAB_CACHE"] = str(tmp / "cache")
        if not args.only_cli:
            probe_datasets(tmp, shared)
            probe_records(tmp)
            probe_models(tmp)
            probe_grading(shared)
    rows = [(a, w, "handled" if r == "handled" else ("wrong-or-silent" if r == "FAILED" else r), m)
            for a, w, r, m in ROWS]
    # an exception that escaped an API call is a traceback for its user
    rows = [(a, w, "message-in-traceback" if r == "wrong-or-silent" and re.match(r"^[A-Z]\w*(Error|Exception): ", m)
             else r, m) for a, w, r, m in rows]
    width = max(len(r[1]) for r in rows)
    print("| area | input | verdict | message |\n|---|---|---|---|")
    for area, what, result, msg in rows:
        print(f"| {area} | {what:<{width}} | {result} | {msg[:150]} |")
    counts = {v: sum(r[2] == v for r in rows) for v in VERDICTS}
    print(f"\n{len(rows)} inputs: " + ", ".join(f"{n} {v}" for v, n in counts.items()))
    sys.exit(1 if len(rows) - counts["handled"] else 0)


if __name__ == "__main__":
    main()
