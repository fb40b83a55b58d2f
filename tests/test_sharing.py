"""Adopting pulled results (alitok/sharing.py) decides, from dvc.lock and the files alone, whether a folder is a
pull to mark up to date, a corrupt copy to refuse, or this clone's own work to leave to Snakemake. The nested
`snakemake --touch` is replaced by a recorder here; tests/test_dvc.py runs the real one after a real pull."""

import hashlib
import json
import subprocess

import pytest
import yaml

from alitok import sharing

from conftest import file_snapshot

PARAMS = {"profile": "tiny", "profiles": {"tiny": {"generator": {"steps": 4, "end_lr": 2.0e-5}}}}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def pulled(tmp_path):
    """A clone right after `dvc pull`: dvc.lock, the cache's listing of results/tiny, and the files."""
    files = {"tokenizer/stage2.pt": b"tokenizer", "generator/S/model.pt": b"generator"}
    for rel, data in files.items():
        (tmp_path / "results" / "tiny" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "results" / "tiny" / rel).write_bytes(data)
    listing = json.dumps([{"md5": md5(d), "relpath": r} for r, d in files.items()]).encode()
    version = md5(listing) + ".dir"
    obj = sharing.cache_object(tmp_path / ".dvc" / "cache", version)
    obj.parent.mkdir(parents=True)
    obj.write_bytes(listing)
    for data in files.values():
        o = sharing.cache_object(tmp_path / ".dvc" / "cache", md5(data))
        o.parent.mkdir(parents=True, exist_ok=True)
        o.write_bytes(data)
    (tmp_path / ".dvc" / "config").write_text("[core]\n    remote = lab\n")
    (tmp_path / "workflow").mkdir()
    (tmp_path / "workflow" / "rules.smk").write_text("rule a:\n")
    # as DVC writes it: YAML 1.2, where 2e-05 (no dot) is a number; PyYAML would read a string
    (tmp_path / "dvc.lock").write_text(f"""schema: '2.0'
stages:
  pipeline:
    cmd: snakemake
    deps:
    - path: workflow
      md5: x.dir
    params:
      params.yaml:
        profile: tiny
        profiles:
          tiny:
            generator:
              steps: 4
              end_lr: 2e-05
    outs:
    - path: results/tiny
      md5: {version}
""")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    return tmp_path


class Touch:
    def __init__(self):
        self.calls = []

    def __call__(self, root, profile, params_file):
        self.calls.append((profile, params_file and yaml.safe_load(params_file.read_text())))


def test_a_pull_is_marked_up_to_date_once_per_lock_version(pulled):
    touch = Touch()
    assert sharing.adopt(pulled, "tiny", touch=touch)
    assert touch.calls == [("tiny", None)]
    assert not sharing.adopt(pulled, "tiny", touch=touch), "the marker remembers this dvc.lock version"
    assert len(touch.calls) == 1
    assert not sharing.adopt(pulled, "smoke", touch=touch), "dvc.lock records another profile"


def test_a_corrupt_pulled_file_is_removed_from_workspace_and_cache_and_named(pulled):
    bad = pulled / "results" / "tiny" / "tokenizer" / "stage2.pt"
    bad.write_bytes(b"tokenizeR")
    touch = Touch()
    with pytest.raises(sharing.SharingError, match="results/tiny/tokenizer/stage2.pt: content md5") as e:
        sharing.adopt(pulled, "tiny", touch=touch)
    assert md5(b"tokenizer") in str(e.value)
    assert not bad.exists() and not sharing.cache_object(pulled / ".dvc" / "cache", md5(b"tokenizer")).exists()
    assert (pulled / "results" / "tiny" / "generator" / "S" / "model.pt").is_file(), "good files stay"
    assert touch.calls == []


def test_own_work_that_differs_from_the_lock_is_left_to_snakemake(pulled, capsys):
    (pulled / "logs" / "tiny").mkdir(parents=True)  # jobs ran here
    changed = pulled / "results" / "tiny" / "generator" / "S" / "model.pt"
    changed.write_bytes(b"retrained")
    touch = Touch()
    assert not sharing.adopt(pulled, "tiny", touch=touch)
    assert touch.calls == [] and changed.read_bytes() == b"retrained"
    assert "1 file(s) differ from dvc.lock" in capsys.readouterr().err
    assert (pulled / ".snakemake" / "alitok" / "adopted-tiny").is_file(), "judged once, not hashed every run"


def test_changed_params_are_touched_with_the_locks_params(pulled):
    doc = yaml.safe_load((pulled / "params.yaml").read_text())
    doc["profiles"]["tiny"]["generator"]["steps"] = 6  # `dvc exp run -S` before any snakemake call
    (pulled / "params.yaml").write_text(yaml.safe_dump(doc))
    touch = Touch()
    assert sharing.adopt(pulled, "tiny", touch=touch)
    ((profile, recorded),) = touch.calls
    assert recorded["profiles"]["tiny"]["generator"]["steps"] == 4, "the params the results were computed with"


def test_a_partial_pull_is_not_marked_and_is_judged_again_later(pulled):
    model = pulled / "results" / "tiny" / "generator" / "S" / "model.pt"
    model.unlink()
    touch = Touch()
    assert not sharing.adopt(pulled, "tiny", touch=touch)
    with pytest.raises(sharing.SharingError, match="missing"):
        sharing.adopt(pulled, "tiny", strict=True, touch=touch)
    model.write_bytes(b"generator")
    assert sharing.adopt(pulled, "tiny", touch=touch) and len(touch.calls) == 1


def test_code_changed_since_the_lock_commit_is_not_marked(pulled):
    git = ["git", "-c", "user.email=ci@example.org", "-c", "user.name=ci"]
    subprocess.run([*git, "init", "-q"], cwd=pulled, check=True)
    subprocess.run([*git, "add", "dvc.lock", "params.yaml", "workflow"], cwd=pulled, check=True)
    subprocess.run([*git, "commit", "-qm", "results"], cwd=pulled, check=True)
    (pulled / "workflow" / "rules.smk").write_text("rule b:\n")
    touch = Touch()
    assert not sharing.adopt(pulled, "tiny", touch=touch)
    assert touch.calls == []
    with pytest.raises(sharing.SharingError, match=r"code differs .*workflow/rules.smk"):
        sharing.adopt(pulled, "tiny", strict=True, touch=touch)


def test_no_lock_is_a_no_op_and_a_strict_pull_without_one_is_refused(tmp_path):
    touch = Touch()
    assert not sharing.adopt(tmp_path, "tiny", touch=touch) and touch.calls == []
    with pytest.raises(sharing.SharingError, match="no dvc.lock"):
        sharing.adopt(tmp_path, "tiny", strict=True, touch=touch)


def test_the_parse_time_check_only_looks(pulled):
    """`pending`, which the Snakefile calls while it is parsed (dry runs too): a pull not yet adopted is named from
    dvc.lock, the marker and two folders alone; nothing is hashed (a corrupt file passes) and nothing is written."""
    (pulled / "results" / "tiny" / "tokenizer" / "stage2.pt").write_bytes(b"tokenizeR")
    before = file_snapshot(pulled)
    line = sharing.pending(pulled, "tiny")
    assert "results/tiny" in line and "`alitok pull --no-fetch`" in line and "docs/sharing.md" in line
    assert sharing.pending(pulled, "smoke") is None, "dvc.lock records another profile"
    assert file_snapshot(pulled) == before, "the check wrote something"
    (pulled / "results" / "tiny" / "tokenizer" / "stage2.pt").write_bytes(b"tokenizer")
    assert sharing.adopt(pulled, "tiny", strict=True, touch=Touch())
    assert sharing.pending(pulled, "tiny") is None, "adopted: this dvc.lock version is in the marker"


def test_the_parse_time_check_leaves_own_work_and_unpulled_clones_alone(pulled, tmp_path_factory):
    (pulled / "logs" / "tiny").mkdir(parents=True)  # jobs ran here
    assert sharing.pending(pulled, "tiny") is None
    empty = tmp_path_factory.mktemp("fresh")
    assert sharing.pending(empty, "tiny") is None, "no dvc.lock"
    (empty / "dvc.lock").write_text((pulled / "dvc.lock").read_text())
    assert sharing.pending(empty, "tiny") is None, "nothing pulled yet"
