# The Hydra configs of ttslab, installed as the package `ttslab.conf` (see pyproject.toml).
