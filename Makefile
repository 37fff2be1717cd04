# make figures: rebuild paper_figures/ from the study's published numbers and the CPU study run shipped
# with ttslab (ttslab/data/study_run/, listed by ttslab.study.study_run_dirs()).
# make site: the companion site (README, executed notebooks, paper_figures) as static files in
# build/site/html; make site-check also opens every page in headless Chromium (Debian's chromium).
# make test-fast: the tests that need no model, no server and no notebook execution (well under a minute).
# make newcomer: README commands 1 and 2 from a clean clone in a temporary directory, timed (long: ~15 min).
PYTHON ?= python

.PHONY: figures notebooks site site-check test-fast newcomer
figures:  # no arguments: the shipped study run, named by relative paths in paper_figures/README.md
	ttslab figures

# execute every notebook (as the test suite does)
notebooks:
	$(PYTHON) -m pytest --nbmake notebooks/

site:
	ttslab site

site-check:
	ttslab site --check

test-fast:
	$(PYTHON) -m pytest -m "not model"

newcomer:
	$(PYTHON) benchmarks/newcomer.py
