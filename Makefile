# make figures: rebuild paper_figures/ from the study's published numbers and the CPU study run shipped
# with ttslab (ttslab/data/study_run/, listed by ttslab.study.study_run_dirs()).
PYTHON ?= python
STUDY_RUN_DIRS = $(shell $(PYTHON) -c "from ttslab.study import study_run_dirs; print(' '.join(map(str, study_run_dirs())))")

.PHONY: figures notebooks
figures:
	ttslab figures $(STUDY_RUN_DIRS)

# execute every notebook (as the test suite does)
notebooks:
	$(PYTHON) -m pytest --nbmake notebooks/
