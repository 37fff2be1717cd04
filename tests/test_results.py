"""Run directories: the writer's lock (two real processes), record validation with file:line, atomic repair."""

import json
import os
import signal
import subprocess
import sys

import pytest

from ttslab.errors import InputError
from ttslab.results import (
    LOCK,
    RECORDS,
    RecordWriter,
    Run,
    check_records,
    lock_run_dir,
    merge_runs,
    read_records,
    rewrite_records,
)

HOLDER = """
import sys
from ttslab.results import lock_run_dir
with lock_run_dir(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()  # hold until the parent closes stdin (or kills us)
"""


USAGE = {"prompt_tokens": 10, "cached_tokens": 0, "completion_tokens": 5}


def record(pid="p1", method="best_of_n", budget=4, **extra):
    return {"problem_id": pid, "method": method, "budget": budget, "prm": None, "seed": 0,
            "candidates": [{"text": "x", "answer": "1", "correct": True}],
            "selections": {"majority": {"answer": "1", "correct": True}, "oracle": {"answer": "1", "correct": True}},
            "usage": {"policy": dict(USAGE), "prm": dict(USAGE)}, **extra}


IDENTITY = {"policy.name": "p", "seed": 0, "prm.name": "none"}


def shard_dir(path, pids, identity=IDENTITY):
    """A shard run directory: identity.json and one record per problem id."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "identity.json").write_text(json.dumps(identity))
    with RecordWriter(path) as w:
        for pid in pids:
            w.write(record(pid))
    return path


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of tmp_path/run."""
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    yield run, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_a_second_writer_is_refused_naming_the_directory_and_pid(holder):
    run, proc = holder
    with pytest.raises(InputError, match=rf"{run}.*pid {proc.pid}"), lock_run_dir(run):
        pass
    with pytest.raises(InputError, match=f"pid {proc.pid}"):
        RecordWriter(run)  # the writer takes the lock too
    assert json.loads((run / LOCK).read_text())["pid"] == proc.pid
    proc.stdin.close()  # the holder exits normally: the lock is released
    proc.wait(timeout=30)
    with lock_run_dir(run):
        assert json.loads((run / LOCK).read_text())["pid"] == os.getpid()


def test_the_lock_of_a_killed_process_disappears_with_it(holder):
    run, proc = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    # the pid of the dead holder is still written in the lock file, but the kernel released its lock
    assert json.loads((run / LOCK).read_text())["pid"] == proc.pid
    with RecordWriter(run) as w:
        w.write(record())
    assert len(read_records(run)) == 1


def test_merge_takes_the_lock_of_its_output(holder, tmp_path):
    run, proc = holder
    shard = shard_dir(tmp_path / "shard", ["p1"])
    with pytest.raises(InputError, match=f"pid {proc.pid}"):
        merge_runs([shard], run)
    assert not (run / RECORDS).exists()
    (run / RECORDS).write_text(json.dumps(record("p9")) + "\n")  # the holder's first record
    (run / "identity.json").write_text(json.dumps(IDENTITY))
    with pytest.raises(InputError, match=f"pid {proc.pid}"):
        merge_runs([run], tmp_path / "out")  # a shard still being written is not merged


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    with lock_run_dir(tmp_path / "r"):
        with RecordWriter(tmp_path / "r") as w:  # the runner holds the lock and opens a writer
            w.write(record())
        with lock_run_dir(tmp_path / "r"):
            pass
    assert read_records(tmp_path / "r")[0]["problem_id"] == "p1"


def test_merge_deduplicates_and_refuses_a_missing_shard(tmp_path):
    for name, pids in [("a", ["p1", "p2"]), ("b", ["p2", "p3"])]:
        shard_dir(tmp_path / name, pids)
        (tmp_path / name / "config.yaml").write_text("seed: 0\n")
    assert merge_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "out") == 3
    assert (tmp_path / "out" / "config.yaml").read_text() == "seed: 0\n"
    with pytest.raises(InputError, match="shard .*nope.*no records.jsonl"):
        merge_runs([tmp_path / "a", tmp_path / "nope"], tmp_path / "out2")


def write_lines(run, lines):
    run.mkdir(parents=True, exist_ok=True)
    (run / RECORDS).write_bytes(b"".join(lines))
    return run / RECORDS


def test_a_garbage_line_is_an_input_error_with_file_and_line(tmp_path):
    good = (json.dumps(record()) + "\n").encode()
    path = write_lines(tmp_path / "r", [good, b"{not json\n", good])
    for call in (read_records, check_records, Run.load, RecordWriter):
        with pytest.raises(InputError, match=rf"{path}:2: not a JSON record"):
            call(tmp_path / "r")
    path = write_lines(tmp_path / "bytes", [good, os.urandom(200).replace(b"\n", b"") + b"\n", good])
    with pytest.raises(InputError, match=rf"{path}:2: not (UTF-8|a JSON record)"):
        check_records(tmp_path / "bytes")


def test_a_line_of_another_schema_names_the_missing_keys(tmp_path):
    other = {"problem_id": "p1", "answer": "3"}
    path = write_lines(tmp_path / "r", [(json.dumps(record()) + "\n").encode(), (json.dumps(other) + "\n").encode()])
    with pytest.raises(InputError, match=rf"{path}:2: not a ttslab record: key\(s\) 'method', 'budget', "
                                         r"'candidates', 'selections' missing"):
        read_records(tmp_path / "r")
    path = write_lines(tmp_path / "t", [(json.dumps(record(budget="4")) + "\n").encode()])
    with pytest.raises(InputError, match=rf"{path}:1: key 'budget' is str '4'; expected an integer"):
        check_records(tmp_path / "t")
    path = write_lines(tmp_path / "l", [b"[1, 2]\n"])
    with pytest.raises(InputError, match=rf"{path}:1: expected a JSON object"):
        check_records(tmp_path / "l")
    path = write_lines(tmp_path / "s", [(json.dumps(record(schema=99)) + "\n").encode()])
    with pytest.raises(InputError, match=rf"{path}:1: record schema 99"):
        check_records(tmp_path / "s")


def test_missing_or_mistyped_run_directories(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        Run.load(tmp_path / "typo")
    with pytest.raises(InputError, match="no such run directory"):
        read_records(tmp_path / "typo")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no records.jsonl"):
        Run.load(tmp_path / "empty")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        Run.load(tmp_path / "file")
    with pytest.raises(InputError, match="is a file"):
        check_records(tmp_path / "file")
    assert check_records(tmp_path / "not-yet") == 0 and check_records(tmp_path / "empty") == 0


def test_the_torn_tail_is_skipped_and_repaired_atomically(tmp_path):
    good = (json.dumps(record()) + "\n").encode()
    torn = json.dumps(record("p2")).encode()[:-7]
    path = write_lines(tmp_path / "r", [good, torn])
    assert check_records(tmp_path / "r") == 1  # the torn last line is what a kill leaves: not an error
    before = path.stat().st_ino
    with path.open("rb") as reader:  # a reader of the old file keeps seeing it whole
        with RecordWriter(tmp_path / "r") as w:
            assert w.has(("p1", "best_of_n", 4, None, 0))
            w.write(record("p2"))
        assert reader.read() == good + torn
    assert path.stat().st_ino != before  # replaced by rename, not truncated in place
    assert [r["problem_id"] for r in read_records(tmp_path / "r")] == ["p1", "p2"]
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_rewrite_records_is_atomic_and_validated(tmp_path):
    with RecordWriter(tmp_path / "r") as w:
        w.write(record("p1"))
    lines = (tmp_path / "r" / RECORDS).read_text().splitlines(keepends=True)
    before = (tmp_path / "r" / RECORDS).stat().st_ino
    assert rewrite_records(tmp_path / "r", [lines[0], record("p2")]) == 2
    assert (tmp_path / "r" / RECORDS).stat().st_ino != before
    assert (tmp_path / "r" / RECORDS).read_text().splitlines(keepends=True)[0] == lines[0]  # kept byte for byte
