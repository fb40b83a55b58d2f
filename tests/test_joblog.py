"""A job's stderr also goes to its log (alitok/joblog.py): log lines, warnings, progress bars as rate-limited lines,
and the traceback of a failure. The Snakemake side (a failing rule's log file) is in tests/test_workflow.py."""

import io
import subprocess
import sys

from alitok import joblog

from conftest import REPO, tool_env


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_a_progress_bar_becomes_rate_limited_lines_ending_with_its_last_state():
    out, clock = io.StringIO(), Clock()
    lines = joblog.ProgressLines(out, every=60, clock=clock)
    lines.write("2024 alitok INFO start\n")
    for i in range(100):  # tqdm redraws its line: "\r" + state, one write each
        clock.t = i  # one redraw a second for 100 s
        lines.write(f"\rgenerator S: {i}%|")
    lines.write("")  # tqdm writes this before a bar's last state
    lines.write("\n")  # the bar closes
    lines.write("\r   \r")  # a bar that leaves nothing (leave=False) clears its line
    lines.write("2024 alitok INFO done\n")
    assert out.getvalue().splitlines() == [
        "2024 alitok INFO start",
        "generator S: 60%|",  # the first state PROGRESS_EVERY after the start, then only the last
        "generator S: 99%|",
        "2024 alitok INFO done",
    ]


def test_text_written_over_a_bar_starts_its_own_line():
    out = io.StringIO()
    lines = joblog.ProgressLines(out, every=60, clock=Clock())
    lines.write("\rsample S-untrained: 5/20")
    lines.write("Traceback (most recent call last):\n")
    assert out.getvalue().splitlines() == ["sample S-untrained: 5/20", "Traceback (most recent call last):"]


def test_a_failing_command_logs_its_warning_progress_and_traceback_once(tmp_path):
    """In a process of its own, as Snakemake runs a job: the console and the log both get the traceback, once."""
    log = tmp_path / "logs" / "job.log"
    script = f"""
import sys, warnings
from tqdm import tqdm
from alitok import cli
import alitok.config as config

def main(args, p):
    for _ in tqdm(range(3), desc="generator S-untrained", file=sys.stderr):
        pass
    warnings.warn("a warning on the way")
    raise RuntimeError("the job failed")

config.main = main  # `alitok params` made to fail as a bug in a stage would
sys.exit(cli.main(["params", "--profile", "tiny", "--log", {str(log)!r}]))
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=tool_env(), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    text = log.read_text()
    assert "generator S-untrained: 100%" in text and "\r" not in text  # the bar's last state, one line
    assert "UserWarning: a warning on the way" in text
    assert text.count("Traceback (most recent call last)") == 1
    assert text.rstrip().endswith("RuntimeError: the job failed")
    assert proc.stderr.count("Traceback (most recent call last)") == 1 and "the job failed" in proc.stderr


def test_a_user_error_is_one_line_in_the_log_and_on_the_console(tmp_path):
    log = tmp_path / "job.log"
    proc = subprocess.run(
        [sys.executable, "-m", "alitok", "params", "--profile", "no_such_profile", "--log", str(log)],
        cwd=REPO,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "no_such_profile" in log.read_text() and "Traceback" not in log.read_text()
    assert proc.stderr.count("alitok params: error:") == 1


def test_labels_name_the_derived_params():
    assert joblog.label({"name": "tiny"}, "S") == "S"
    assert joblog.label({"ablation": {"unit": "B", "seed": 0}}, "S") == "S [ablation B seed 0]"
    assert joblog.label({"setting": "ctf_setting"}, "ctf-S") == "ctf-S [ctf_setting]"
