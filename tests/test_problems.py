"""Problem loading: the bundled set, real MATH-500 / AIME24 files, filters and errors."""

import itertools
import json
import random
from collections import Counter

import pytest

from ttslab.errors import ConfigError, InputError
from ttslab.grading import Grader
from ttslab.problems import load_problems, shard


def test_bundled_set_is_offline_and_graded():
    problems = load_problems()
    assert 40 <= len(problems) <= 60
    assert set(Counter(p.level for p in problems)) == {1, 2, 3, 4, 5}
    assert len({p.id for p in problems}) == len(problems)
    with Grader() as g:  # every gold answer parses and verifies against itself
        assert all(g.equivalent_many([(p.answer, p.answer) for p in problems]))


def test_math500_mapping_and_filters(shared_data):
    path = str(shared_data / "math500.jsonl")
    all_ = load_problems(path)
    assert len(all_) == 500
    assert all_[0].id == "test/precalculus/807.json" and all_[0].level == 2 and all_[0].source == "math500"
    level1 = load_problems(path, levels=[1])
    assert len(level1) == 43 and {p.level for p in level1} == {1}
    picked = load_problems(path, ids=[all_[5].id, all_[2].id])
    assert [p.id for p in picked] == [all_[5].id, all_[2].id]
    assert len(load_problems(path, limit=7)) == 7


def test_aime24_mapping(shared_data):
    problems = load_problems(str(shared_data / "aime24.jsonl"))
    assert len(problems) == 30
    assert all(p.answer.isdigit() and not p.answer.startswith("0") for p in problems if p.answer != "0")
    assert all(p.level is None for p in problems)


def test_missing_file_names_the_key(tmp_path):
    with pytest.raises(InputError, match="dataset.path.*file not found"):
        load_problems(str(tmp_path / "nope.jsonl"))
    with pytest.raises(InputError, match="not a file"):
        load_problems(str(tmp_path) + "/")


def test_unknown_columns_name_the_format_key(tmp_path):
    f = tmp_path / "odd.jsonl"
    f.write_text('{"q": "1+1", "a": "2"}\n')
    with pytest.raises(InputError, match=rf"{f}: fields \['a', 'q'\] match no known problem format.*dataset.format"):
        load_problems(str(f))


MATH = {"problem": "1+1?", "answer": "2", "level": 1, "unique_id": "test/a/1.json", "subject": "Algebra"}


def jsonl(tmp_path, rows, name="p.jsonl"):
    f = tmp_path / name
    f.write_bytes(b"".join(r if isinstance(r, bytes) else (json.dumps(r) + "\n").encode() for r in rows))
    return f


_ids = itertools.count()


def row(**changes):
    r = {**MATH, "unique_id": f"test/a/{next(_ids)}.json", **changes}
    return {k: v for k, v in r.items() if v is not ...}


@pytest.mark.parametrize("rows, message", [
    ([], r"{f}: the file is empty"),
    ([b"  \n\n"], r"{f}: the file is empty"),
    ([row(), row(), b'{"problem": "x", "answer": \n'], r"{f}:3: not valid JSON \(.*\); expected one JSON object per line"),
    ([row(), b"\xff\xfe\x00garbage\n"], r"{f}:2: not UTF-8 text"),
    ([row(), row(answer=...)], r"{f}:2: field 'answer' is missing; expected the gold answer \(a non-empty string"),
    ([row(), row(), row(problem=...)], r"{f}:3: field 'problem' is missing; expected a non-empty string"),
    ([row(level="hard")], r"{f}:1: field 'level' is string 'hard'; expected a level"),
    ([row(answer=["2"])], r"{f}:1: field 'answer' is list .*expected the gold answer"),
    ([row(problem="")], r"{f}:1: field 'problem' is string ''; expected a non-empty string"),
    ([row(subject="Algebra"), row(subject=3)], r"{f}:2: field 'subject' is a number here but a string at {f}:1"),
    ([row(), b"[1, 2]\n"], r"{f}:2: a JSON list; expected a JSON object"),
    ([row(unique_id="x"), row(unique_id="x")], r"problem id 'x' appears twice \(rows 0 and 1\)"),
])
def test_bad_dataset_files_name_file_line_field_and_expectation(tmp_path, rows, message):
    f = jsonl(tmp_path, rows)
    with pytest.raises(InputError, match=message.format(f=f)):
        load_problems(str(f))


def test_random_bytes_and_damaged_parquet_name_the_file(tmp_path):
    noise = random.Random(0).randbytes(4096)
    for name in ("noise.jsonl", "noise.json", "noise.parquet"):
        f = tmp_path / name
        f.write_bytes(noise)
        with pytest.raises(InputError, match=rf"{f}"):
            load_problems(str(f))


def test_a_json_array_file_is_validated_and_loaded(tmp_path):
    f = tmp_path / "p.json"
    f.write_text(json.dumps([row(), row()]))
    assert len(load_problems(str(f))) == 2
    f.write_text(json.dumps([row(), row(answer=...)]))
    with pytest.raises(InputError, match=rf"{f}: item 1: field 'answer' is missing"):
        load_problems(str(f))


def test_filters_that_select_nothing_are_config_errors(shared_data, tmp_path):
    path = str(shared_data / "math500.jsonl")
    with pytest.raises(ConfigError, match=r"dataset.levels=\[9\]: no problem .* \(levels present: \[1, 2, 3, 4, 5\]\)"):
        load_problems(path, levels=[9])
    with pytest.raises(ConfigError, match="dataset.levels=.*this dataset has no levels"):
        load_problems(str(shared_data / "aime24.jsonl"), levels=[1])
    with pytest.raises(ConfigError, match=r"dataset.limit=501: only 500 problems"):
        load_problems(path, limit=501)
    with pytest.raises(ConfigError, match=r"dataset.limit=50: only 43 problems"):
        load_problems(path, levels=[1], limit=50)
    with pytest.raises(ConfigError, match=r"dataset.limit=0"):
        load_problems(path, limit=0)
    with pytest.raises(ConfigError, match=r"dataset.ids: \['nope'\] not found"):
        load_problems(path, ids=["nope"])
    assert len(load_problems(path, limit=500)) == 500


def test_shard_partitions_problems():
    problems = load_problems()
    parts = [shard(problems, f"{i}/3") for i in range(3)]
    assert sorted(p.id for part in parts for p in part) == sorted(p.id for p in problems)
    with pytest.raises(ConfigError, match="shard"):
        shard(problems, "3/3")
