"""Params: every profile validates; invalid params fail before work, naming the key and what is allowed."""

import copy

import pytest
import yaml

from alitok import config

from conftest import REPO, edit_params, run

PROFILES = ["tiny", "smoke", "imagenet256", "imagenet512"]


@pytest.fixture
def doc():
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_default_profile_is_smoke(doc):
    assert doc["profile"] == "smoke"
    assert config.load(REPO / "params.yaml")["name"] == "smoke"


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_resolves(name):
    p = config.load(REPO / "params.yaml", name)
    assert p["name"] == name
    assert p["data"]["image_size"] >= 32


def test_inheritance_overrides_only_what_differs():
    smoke = config.load(REPO / "params.yaml", "smoke")
    tiny = config.load(REPO / "params.yaml", "tiny")
    assert tiny["data"]["embedded"]["train_per_class"] < smoke["data"]["embedded"]["train_per_class"]
    assert tiny["tokenizer"]["model"]["enc_width"] < smoke["tokenizer"]["model"]["enc_width"]
    assert tiny["data"]["image_size"] == smoke["data"]["image_size"]  # inherited, not restated
    assert tiny["data"]["embedded"]["seed"] == smoke["data"]["embedded"]["seed"]
    i512 = config.load(REPO / "params.yaml", "imagenet512")
    assert i512["data"]["image_size"] == 512 and i512["data"]["root"] == "data/imagenet"


def _error(doc, profile=None) -> str:
    with pytest.raises(config.ParamsError) as e:
        config.load(doc, profile)
    return str(e.value)


def test_unknown_key_names_key_and_allowed(doc):
    doc["profiles"]["smoke"]["data"]["embedded"]["num_clases"] = 3
    msg = _error(doc)
    assert "data.embedded.num_clases" in msg and "num_classes" in msg and "'smoke'" in msg
    # the child profile inherits the typo, and an inactive profile's error is reported too
    doc2 = yaml.safe_load((REPO / "params.yaml").read_text())
    doc2["profiles"]["imagenet512"]["data"]["bogus"] = 1
    assert "data.bogus" in _error(doc2)


def test_wrong_type(doc):
    doc["profiles"]["smoke"]["classifier"]["epochs"] = "ten"
    msg = _error(doc)
    assert "classifier.epochs" in msg and "integer" in msg


def test_out_of_range(doc):
    doc["profiles"]["smoke"]["data"]["embedded"]["num_classes"] = 50
    msg = _error(doc)
    assert "data.embedded.num_classes" in msg and "<= 12" in msg
    doc["profiles"]["smoke"]["data"]["embedded"]["num_classes"] = 10
    doc["profiles"]["smoke"]["classifier"]["lr"] = 0
    assert "classifier.lr" in _error(doc) and "> 0" in _error(doc)


def test_enum(doc):
    doc["profiles"]["smoke"]["data"]["check"] = "paranoid"
    msg = _error(doc)
    assert "data.check" in msg and "'decode'" in msg and "'header'" in msg


def test_missing_key(doc):
    del doc["profiles"]["smoke"]["data"]["workers"]
    assert "data.workers" in _error(doc)


def test_conditional_requirements(doc):
    d = copy.deepcopy(doc)
    del d["profiles"]["smoke"]["data"]["embedded"]
    assert "data.embedded" in _error(d)
    d = copy.deepcopy(doc)
    d["profiles"]["imagenet256"]["data"]["root"] = None
    assert "data.root" in _error(d)


def test_generator_run_must_name_defined_scales(doc):
    assert config.load(REPO / "params.yaml", "imagenet512")["generator"]["run"] == ["L"]  # the paper's only 512 row
    doc["profiles"]["imagenet512"]["generator"]["run"] = ["L", "M"]
    msg = _error(doc)
    assert "'imagenet512'" in msg and "generator.run names M" in msg and "B, L, XL" in msg


def test_unknown_profile_and_bad_base(doc):
    assert "'nope' is not defined" in _error(doc, "nope")
    doc["profiles"]["tiny"]["base"] = "smok"
    msg = _error(doc)
    assert "'tiny'" in msg and "'smok'" in msg
    doc["profiles"]["tiny"]["base"] = "tiny"
    assert "loops" in _error(doc)


def test_unknown_top_level_key(doc):
    doc["profil"] = "smoke"
    assert "profil" in _error(doc)


def test_section_hash_stable_and_sensitive():
    a = {"lr": 1e-3, "epochs": 2}
    assert config.section_hash(a) == config.section_hash(dict(reversed(list(a.items()))))
    assert config.section_hash(a) != config.section_hash({"lr": 2e-3, "epochs": 2})


def test_snakemake_refuses_invalid_params_before_any_job(project):
    edit_params(project, lambda d: d["profiles"]["smoke"]["classifier"].update(epochs=-1))
    proc = run(["snakemake", "-n"], cwd=project, check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "classifier.epochs" in out and ">= 1" in out
    assert not (project / "results" / "smoke").exists()


def test_cli_refuses_invalid_params_in_one_line(project):
    text = (project / "params.yaml").read_text().replace("check: decode", "check: maybe", 1)
    (project / "params.yaml").write_text(text)
    proc = run(["alitok", "params"], cwd=project, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "data.check" in lines[0] and "Traceback" not in proc.stderr
