"""The jobs a dry run plans, one line each, sorted: to compare a DAG before and after a change to the rules.

    python scripts/job_list.py ablations ablations > before.txt   # profile, then targets (default: all)
    ... change the rules ...
    python scripts/job_list.py ablations ablations | diff before.txt -

A job's line is its `alitok` command with the options that say what it does (profile, stage, scale, control,
split, units, seed, section) and whether torchrun launches it; paths, logs and MLflow tags are left out, so a
change that moves files or renames a rule but runs the same work diffs empty.
"""

import re
import subprocess
import sys

WHAT = {"--profile", "--stage", "--phases-from", "--scale", "--control", "--ctf-stage", "--split", "--units", "--seed"}
WHAT |= {"--section"}


def job(shell: str) -> str:
    words = shell.split()
    if "alitok" not in words:
        return words[0] if words else "<no command>"
    i = words.index("alitok")
    kept, option = [words[i + 1]], None
    for w in words[i + 2 :]:
        option = w if w.startswith("--") else option
        if option in WHAT and (w.startswith("--") or "/" not in w):  # not compare-tokenizer-stages' --control path
            kept.append(w)
    return " ".join(kept + (["(torchrun)"] if words[0] == "torchrun" else []))


def main(profile: str, *targets: str) -> None:
    cmd = ["snakemake", "-n", "-p", "--config", f"profile={profile}", "--", *targets]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    shells = [s for s in re.findall(r"^Shell command: (.*)$", out, re.MULTILINE) if s != "None"]  # target rules
    print("\n".join(sorted(job(s) for s in shells)))


if __name__ == "__main__":
    main(*sys.argv[1:])
