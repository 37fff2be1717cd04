"""Problem loading: the bundled set, real MATH-500 / AIME24 files, filters and errors."""

from collections import Counter

import pytest

from ttslab.problems import load_problems, shard
from ttslab.grading import Grader


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
    with pytest.raises(FileNotFoundError, match="dataset.path"):
        load_problems(str(tmp_path / "nope.jsonl"))


def test_unknown_columns_name_the_format_key(tmp_path):
    f = tmp_path / "odd.jsonl"
    f.write_text('{"q": "1+1", "a": "2"}\n')
    with pytest.raises(ValueError, match="dataset.format"):
        load_problems(str(f))


def test_shard_partitions_problems():
    problems = load_problems()
    parts = [shard(problems, f"{i}/3") for i in range(3)]
    assert sorted(p.id for part in parts for p in part) == sorted(p.id for p in problems)
    with pytest.raises(ValueError, match="shard"):
        shard(problems, "3/3")
