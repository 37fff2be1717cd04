"""`ttslab figures` names the shipped study run the same way from any working directory."""

from pathlib import Path

from ttslab import figures, study


def test_the_shipped_run_is_named_relative_to_the_package_root_from_any_directory(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(figures, "build_figures", lambda run_dirs, out, command, **kw: calls.append((run_dirs, kw)) or [])
    elsewhere = tmp_path / "unrelated" / "cwd"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    assert figures.main([]) == 0
    (run_dirs, kw), = calls
    expected = [f"ttslab/data/study_run/{d.name}" for d in study.study_run_dirs()]
    assert expected and kw["shown_dirs"] == expected  # what paper_figures/README.md will say
    assert all(Path(d).is_dir() for d in run_dirs)  # what is read: the real directories
