"""Every config file composes against its typed schema; the schemas catch what YAML alone would not."""

from __future__ import annotations

from importlib.resources import files

import pytest
import yaml

from ttslab.config import CONFIG_MODULE, SCHEMAS, compose
from ttslab.errors import ConfigError

CONF = files(CONFIG_MODULE)
SCHEMA_GROUPS = {group for group, _ in SCHEMAS}
OPTIONS = [(g.name, f.name[:-5]) for g in CONF.iterdir() if g.is_dir() and g.name in SCHEMA_GROUPS | {"experiment"}
           for f in g.iterdir() if f.name.endswith(".yaml")]


@pytest.mark.parametrize("group, option", sorted(OPTIONS), ids=lambda x: str(x))
def test_every_option_of_every_group_composes(group, option):
    cfg = compose([f"{group}={option}"])
    assert cfg.run_dir and cfg.dataset.name


@pytest.mark.parametrize("group, option", sorted(o for o in OPTIONS if o[0] in SCHEMA_GROUPS), ids=lambda x: str(x))
def test_every_group_file_starts_from_its_schema(group, option):
    data = yaml.safe_load((CONF / group / f"{option}.yaml").read_text())
    bases = {name for g, name in SCHEMAS if g == group}
    assert set(data.get("defaults") or []) & bases, f"conf/{group}/{option}.yaml: add `defaults: [<base_{group}>, _self_]`"


@pytest.mark.parametrize("override, message", [
    ("policy.temprature=0.5", "Could not override 'policy.temprature'"),
    ("method.max_steps=many", "method.max_steps=many"),
    ("engine.n_batch=1.5", "engine.n_batch=1.5"),
])
def test_the_schema_rejects_unknown_keys_and_wrong_types(override, message):
    with pytest.raises(ConfigError) as e:
        compose([override])
    assert message in str(e.value)


def test_an_unknown_key_in_a_config_file_is_refused(tmp_path, monkeypatch):
    """A YAML group file is merged into its schema: a misspelt key fails composition, naming it."""
    from omegaconf import OmegaConf

    from ttslab.config import PolicyConfig

    with pytest.raises(Exception, match="temprature"):
        OmegaConf.merge(OmegaConf.structured(PolicyConfig), {"name": "x", "temprature": 0.5})
