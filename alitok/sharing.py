"""Pulled results count as computed: `alitok pull`, and Snakemake has nothing to do.

Two things stand between `dvc pull` and "Nothing to be done"; `adopt` deals with both, run by `alitok pull`
(= `dvc pull`, then `adopt`) or by `alitok pull --no-fetch` after a plain `dvc pull`:
- DVC trusts the remote: a corrupted object is checked out under the hash it was stored under, and
  `dvc status` reports it up to date. Every pulled file is hashed here against dvc.lock; a mismatch is removed
  from the workspace and the cache and refused, naming the file.
- Pulled files get new, arbitrary modification times, and a fresh clone has no Snakemake provenance records,
  so Snakemake would rerun jobs whose inputs merely look newer, and would miss a later params change.
  `snakemake --touch --forceall` marks every output up to date in DAG order and records each job's params and
  code (dvc.lock's params, when params.yaml has changed since), so afterwards only what a changed param really
  affects reruns. A marker in .snakemake/alitok/ remembers the dvc.lock version judged.
Adoption refuses (the library call skips, unless `strict`) when the files are this clone's own work (they differ
from dvc.lock and jobs have run here) or when the pipeline's code differs from the commit that recorded dvc.lock.
Parsing the Snakefile only calls `pending`: it reads dvc.lock and the marker, hashes and writes nothing and starts
no process; a dry run warns, a real run is refused before any job (docs/sharing.md).
"""

from __future__ import annotations

import configparser
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import yaml
from tqdm import tqdm

from alitok import atomic

log = logging.getLogger("alitok.sharing")


class SharingError(RuntimeError):
    """A pull that cannot be trusted or adopted: the message says which file and what to do."""


def _dvc(*args: str, cwd: Path, capture: bool = False) -> subprocess.CompletedProcess:
    proc = subprocess.run(["dvc", *args], cwd=cwd, text=True, capture_output=capture)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout or "").strip().splitlines()[-1:] if capture else []
        raise SharingError(
            f"`dvc {' '.join(args)}` failed (exit {proc.returncode})" + (f": {detail[0]}" if detail else "")
        )
    return proc


def read_lock(lock: Path) -> dict:
    """dvc.lock as DVC wrote it: YAML 1.2 (ruamel), in which `2e-05` is a number; PyYAML reads it as a string, and
    dvc.lock's params would then never equal params.yaml's."""
    from ruamel.yaml import YAML  # DVC's own YAML library; imported here so the models never need it

    return YAML(typ="safe", pure=True).load(lock.read_text()) or {}


def cache_object(cache: Path, md5: str) -> Path:
    return cache / "files" / "md5" / md5[:2] / md5[2:]


def recorded_files(outs: list[dict], cache: Path) -> dict[Path, str]:
    """Every file that these dvc.lock outputs hold, with the md5 recorded for it (directory outputs expanded
    through their .dir listing in the cache)."""
    files: dict[Path, str] = {}
    for out in outs:
        path, md5 = Path(out["path"]), out["md5"]
        if md5.endswith(".dir"):
            listing = cache_object(cache, md5)
            if not listing.is_file():
                raise SharingError(
                    f"{path}: its file listing ({md5}) is not in the DVC cache {cache}; "
                    "the remote does not have this version (was it pushed?)"
                )
            for entry in json.loads(listing.read_text()):
                files[path / entry["relpath"]] = entry["md5"]
        else:
            files[path] = md5
    return files


ADOPTING = "ALITOK_ADOPTING"  # set for adoption's `snakemake --touch`: its results are not yet marked, by design
PARAMS_FILE = "ALITOK_PARAMS_FILE"  # the Snakefile's configfile, when it is not params.yaml


def _cache_dir(root: Path) -> Path:
    """The DVC cache, from .dvc/config(.local) like DVC reads it; no `dvc` call, since inside `dvc exp run`
    the repository lock is held."""
    cache = root / ".dvc" / "cache"
    for name in ("config", "config.local"):
        cfg = configparser.ConfigParser()
        cfg.read(root / ".dvc" / name)
        if cfg.has_option("cache", "dir"):
            cache = (root / ".dvc" / cfg.get("cache", "dir")).resolve()
    return cache


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=root, text=True, capture_output=True)


def code_changed_since_lock(root: Path, deps: list[str]) -> list[str]:
    """The pipeline's code deps (dvc.lock's) that differ from the commit that last recorded dvc.lock. Empty
    outside git, or when dvc.lock itself is uncommitted (it was then written from this working tree)."""
    if _git(root, "rev-parse", "--git-dir").returncode != 0:
        return []
    if _git(root, "diff", "--quiet", "HEAD", "--", "dvc.lock").returncode != 0:
        return []
    commit = _git(root, "log", "-1", "--format=%H", "--", "dvc.lock").stdout.strip()
    if not commit:
        return []
    changed = _git(root, "diff", "--name-only", commit, "--", *deps).stdout.split()
    untracked = _git(root, "ls-files", "--others", "--exclude-standard", "--", *deps).stdout.split()
    return sorted(set(changed) | set(untracked))


def _refuse_corrupt(root: Path, cache: Path, bad: dict[Path, tuple[str, str]]) -> SharingError:
    for rel, (_, recorded) in bad.items():
        (root / rel).unlink()
        cache_object(cache, recorded).unlink(missing_ok=True)
    problems = [
        f"{rel}: content md5 {actual} does not match {recorded} recorded in dvc.lock"
        for rel, (actual, recorded) in bad.items()
    ]
    return SharingError(
        f"refused {len(problems)} pulled file(s) whose content does not match dvc.lock (removed from the "
        "workspace and the DVC cache): " + "; ".join(problems) + ". The remote's copy is corrupt: `dvc push` "
        "from a machine with a good copy, or run the pipeline to recompute them."
    )


def snakemake_touch(root: Path, profile: str, params_file: Path | None) -> None:
    """`snakemake --touch --forceall` for the profile, as a child process. Its onstart takes the run lock
    (alitok/runlock.py), so it is refused while a pipeline runs in this directory."""
    cmd = [sys.executable, "-m", "snakemake", "--touch", "--forceall", "--cores", "1", "--config", f"profile={profile}"]
    env = {**os.environ, ADOPTING: "1"}
    if params_file is not None:
        env[PARAMS_FILE] = str(params_file)
    proc = subprocess.run(cmd, cwd=root, env=env, text=True, capture_output=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise SharingError(
            f"`{' '.join(cmd[1:])}` failed (exit {proc.returncode}) while marking pulled results up to date:\n{tail}"
        )


def _marker(root: Path, profile: str) -> Path:
    return root / ".snakemake" / "alitok" / f"adopted-{profile}"


def pending(root: Path, profile: str) -> str | None:
    """What the Snakefile checks while it is parsed: results/<profile> came from a pull that `adopt` has not
    judged yet. Read-only and cheap (a few stats, dvc.lock and the marker): no hashing, no writing, no process.
    A pull brings results/<profile> but never logs/<profile>, which every job writes; dvc.lock records the version
    the marker does not hold. Returns the line to show, or None."""
    results = f"results/{profile}"
    lock_path = root / "dvc.lock"
    if os.environ.get(ADOPTING) or not lock_path.is_file() or not (root / results).is_dir():
        return None
    if (root / "logs" / profile).is_dir():  # jobs ran here: this clone's own work, or adopted already
        return None
    stage = read_lock(lock_path).get("stages", {}).get("pipeline") or {}
    outs = [o for o in stage.get("outs", []) if o.get("path") == results]
    if not outs:
        return None
    marker = _marker(root, profile)
    if marker.is_file() and marker.read_text().strip() == outs[0]["md5"]:
        return None
    return (
        f"{results} came from `dvc pull` and is not yet verified and marked as computed, so Snakemake would "
        "recompute it: run `alitok pull --no-fetch` (or `alitok pull`) first (docs/sharing.md)"
    )


def adopt(root: Path, profile: str, *, strict: bool = False, touch=snakemake_touch) -> bool:
    """Mark results/<profile> up to date for Snakemake when it holds exactly what dvc.lock records (a pull).
    Returns whether it did. A marker holds the dvc.lock version last adopted or judged to be local work; without
    `strict` that version is not hashed again. `strict` (alitok pull) raises where the plain call skips."""

    def skip(reason: str) -> bool:
        if strict:
            raise SharingError(reason)
        print(f"alitok: {reason}", file=sys.stderr)
        return False

    lock_path = root / "dvc.lock"
    if os.environ.get(ADOPTING) or not lock_path.is_file():
        return False if not strict else skip("no dvc.lock here: nothing was pulled")
    stage = read_lock(lock_path).get("stages", {}).get("pipeline")
    results = f"results/{profile}"
    outs = [o for o in (stage or {}).get("outs", []) if o["path"] == results]
    if not outs:
        return (
            False if not strict else skip(f"dvc.lock records no {results}: it is not the profile params.yaml selects")
        )
    version = outs[0]["md5"]
    marker = _marker(root, profile)
    if not strict and marker.is_file() and marker.read_text().strip() == version:
        return False
    if not (root / results).is_dir():
        return False
    cache = _cache_dir(root)
    try:
        files = recorded_files(outs, cache)  # results/<profile> only: the lock is read once
    except SharingError:
        return False if not strict else skip(f"{results} of dvc.lock is not in the DVC cache: run `dvc pull`")
    # jobs write logs/<profile>/; a pull brings none, so without them a mismatch can only be a bad copy
    local_work = (root / "logs" / profile).is_dir()
    missing = [rel for rel in files if not (root / rel).is_file()]
    if missing:  # a partial pull, or not pulled yet: judge again once it is complete
        if local_work and not strict:
            return False
        return skip(
            f"{len(missing)} file(s) of {results} recorded in dvc.lock are missing (e.g. {missing[0]}): "
            "not marking the results up to date; `dvc pull` them"
        )
    bad = {}
    for rel, md5 in tqdm(
        files.items(), desc=f"check {results} against dvc.lock", unit="file", file=sys.stderr, disable=None
    ):
        actual = atomic.file_digest(root / rel, "md5")
        if actual != md5:
            bad[rel] = (actual, md5)
    if bad and not local_work:
        raise _refuse_corrupt(root, cache, bad)
    if bad or (changed := code_changed_since_lock(root, [d["path"] for d in stage.get("deps", [])])):
        atomic.write_text(marker, version)  # this version is judged: do not hash everything again
        why = (
            f"{len(bad)} file(s) differ from dvc.lock (this clone's own work)"
            if bad
            else f"the pipeline's code differs from the commit that recorded dvc.lock ({', '.join(changed[:5])})"
        )
        return skip(f"{results} not marked up to date: {why}; Snakemake decides what reruns from file times")
    params_file = _lock_params_file(root, profile, stage, marker.parent)
    regenerated = regenerate_images(root, profile, params_file)
    if regenerated:
        print(f"alitok: regenerated {regenerated} embedded images, each as its manifest's sha256 says", file=sys.stderr)
    print(
        f"alitok: {results} matches dvc.lock ({len(files)} files): marking it up to date (snakemake --touch"
        + (", with dvc.lock's params)" if params_file else ")"),
        file=sys.stderr,
    )
    touch(root, profile, params_file)
    atomic.write_text(marker, version)
    return True


def regenerate_images(root: Path, profile: str, params_file: Path | None) -> int:
    """An embedded profile's generated images, which are not shared (.dvcignore: thousands of small files that
    `alitok make-dataset` makes in seconds), made again and checked file by file against the pulled manifests'
    sha256. Returns how many were made (0: none were missing, or the data is not generated)."""
    from alitok.data import manifest

    data = root / "results" / profile / "data"
    info = json.loads((data / "dataset.json").read_text()) if (data / "dataset.json").is_file() else {}
    if info.get("source") != "embedded":
        return 0
    images = root / info["root"]
    rows = [r for split in ("train", "val") for r in manifest.read_manifest(data / f"{split}.csv")]
    if all((images / r.path).is_file() for r in rows):
        return 0
    cmd = [sys.executable, "-m", "alitok", "make-dataset", "--params", str(params_file or root / "params.yaml")]
    proc = subprocess.run([*cmd, "--profile", profile, "--out", str(images)], cwd=root, text=True, capture_output=True)
    if proc.returncode != 0:
        raise SharingError(f"`alitok make-dataset` failed while regenerating {images}: {proc.stderr.strip()[-500:]}")
    bad = [r.path for r in rows if atomic.file_digest(images / r.path, "sha256") != r.sha256]
    if bad:
        raise SharingError(
            f"{len(bad)} of the {len(rows)} regenerated images in {images} differ from the pulled manifests' sha256 "
            f"(e.g. {bad[0]}): this environment draws or encodes them differently from the one that computed the "
            "results (numpy or Pillow versions, docs/environment.md); not marking the results up to date"
        )
    return len(rows)


def _lock_params_file(root: Path, profile: str, stage: dict, folder: Path) -> Path | None:
    """params.yaml with the profiles as dvc.lock records them, or None when they are the same. The touch must
    record the params the results were computed with, so that a changed one reruns its side."""
    recorded = stage.get("params", {}).get("params.yaml", {})
    doc = yaml.safe_load((root / "params.yaml").read_text())
    if "profiles" not in recorded or recorded["profiles"] == doc["profiles"]:
        return None
    doc["profiles"] = recorded["profiles"]
    path = folder / f"params-{profile}.yaml"
    atomic.write_text(path, yaml.safe_dump(doc, sort_keys=False))
    return path


def pull(root: Path = Path("."), remote: str | None = None, fetch: bool = True) -> None:
    """`dvc pull` (unless not `fetch`: the files are already pulled), then adopt: every file verified against
    dvc.lock and the results marked up to date."""
    if fetch:
        _dvc("pull", *(["--remote", remote] if remote else []), cwd=root)
    profile = yaml.safe_load((root / "params.yaml").read_text())["profile"]
    adopt(root, profile, strict=True)


def add_arguments(parser) -> None:
    parser.add_argument("--remote", help="the DVC remote (default: the project's default remote)")
    parser.add_argument("--no-fetch", action="store_true", help="no `dvc pull`: verify and mark what is already pulled")


def main(args, p: dict) -> None:
    """`alitok pull`."""
    pull(Path("."), remote=args.remote, fetch=not args.no_fetch)
    log.info("pulled, verified and marked up to date: `snakemake -n` has nothing to do")
