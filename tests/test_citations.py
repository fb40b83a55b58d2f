"""Every citation of a markdown note points at a file of this repository and at a heading of that file.

What counts as a citation (found by a line-by-line text scan of the files in `SCANNED`, URLs removed first):

1. `<path>.md §<section>`: a path ending in `.md`, then optionally a closing backtick, `*` or `]`, spaces, and
   `§`. The section is a number `2`, `2.1`, `1.3.2`, a range `2.1–2.3` / `1.3-1.6` / `3–4` (both ends are
   checked), or a heading slug (`§design-choices`, only directly after a path).
2. A bare `§<number>` (or range) later on the same line, after a citation of rule 1 or 3, cites the same file
   (`docs/papers/alitok.md §3.5, §1.7`). In the paper notes `docs/papers/*.md` (not their README), a bare `§x`
   on a line with no citation before it cites the note itself.
3. A plain `<path>.md` without `§` when the path starts with `docs/`, starts with `./`, `../` or `/`, has a
   `shared` folder in it, or is one of the bare paper-note names in `NOTE_NAMES` (`ctf.md`, `alitok.md`, ...).
   Other bare names (`report.md`, `stage_comparison.md`) are files a stage writes, not citations, and are skipped.
4. In a markdown file, a link `[text](target.md#anchor)`: the target is resolved relative to the citing file's
   own folder, the anchor (if any) must be a heading slug, and the link's text is not scanned further.

Resolution: a path of rules 1–3 is taken relative to the repository root and nothing else: there is no search by
basename, so a bare `ctf.md §1.2` does not resolve to `docs/ctf.md` (it resolves to `<root>/ctf.md`, which does
not exist). A path that leaves the repository (`../shared/papers/ctf.md`, an absolute path to a `shared`
folder) or has a `shared` folder in it always fails: notes outside the repository cannot be followed from a clone.

Heading match: the headings of a file are its ATX lines (`#` to `######`, outside fenced code). `§x` matches a
heading whose text, after the `#`s and spaces, starts with `x` followed by the end of the text, a space, `:`, `)`
or a `.` that is not followed by a digit. So `## 2.1 Generator sizes` and `## 2.1. Sizes` are §2.1, `## 3. Results`
is §3, and `### 2.1 ...` is not §2. Failing that, `§x` matches a heading whose GitHub-style slug (lower case,
punctuation other than `-` and `_` dropped, spaces to `-`) equals `x` in lower case.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = [
    "alitok",
    "params.yaml",
    "dvc.yaml",
    "workflow",
    "Snakefile",
    "Makefile",
    "docs",
    "results/paper",
    "tests",
    "benchmarks",
    "scripts",
    "README.md",
]
SUFFIXES = {".py", ".yaml", ".yml", ".smk", ".md", ".csv", ".toml", ".txt", ".sh", ".cfg", ".ini", ".json"}
BARE_FILES = {"Snakefile", "Makefile"}
SKIP_DIRS = {"__pycache__", "node_modules"}
SELF = Path(__file__).resolve()
NOTE_NAMES = {
    "alitok.md",
    "alitok-numerics.md",
    "alitok-release.md",
    "alitok-release-checkpoints.md",
    "ctf.md",
    "llamagen.md",
    "design.md",
}

_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+")
_NUM = r"\d+(?:\.\d+)*"
_SEC = rf"(?P<sec>{_NUM})(?:\s*[–-]\s*(?P<end>{_NUM}))?"
_PATH = r"(?P<path>(?:\.{1,2}/|/)?[\w.-]+(?:/[\w.-]+)*\.md)"
# A path (optionally followed by a section), or a bare section.
_TOKEN = re.compile(
    rf"(?<![\w./<>{{}})-]){_PATH}(?![\w/-])(?:[`*\]]*\s*§\s*(?:{_SEC}(?![\w-])|(?P<slug>[A-Za-z][\w-]*)))?"
    rf"|§\s*(?P<bsec>{_NUM})(?:\s*[–-]\s*(?P<bend>{_NUM}))?"
)
_LINK = re.compile(r"\[(?:[^\]\[]|\[[^\]]*\])*\]\((?P<target>[^)\s]+)\)")
_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(?P<text>.*?)\s*#*\s*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def slug(text: str) -> str:
    """GitHub-style anchor of a heading text."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def headings(md_text: str) -> list[str]:
    """ATX heading texts outside fenced code blocks."""
    out, fenced = [], False
    for line in md_text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else _HEADING.match(line)
        if m:
            out.append(m["text"])
    return out


def section_matches(section: str, heads: list[str]) -> bool:
    """The heading-match rule of the module docstring."""
    number = re.compile(re.escape(section) + r"(?:$|[\s:)]|\.(?!\d))")
    return any(number.match(h) for h in heads) or any(slug(h) == section.lower() for h in heads)


@cache
def _headings_of(path: Path) -> tuple[str, ...]:
    return tuple(headings(path.read_text(encoding="utf-8", errors="replace")))


def _resolve(raw: str, base: Path, root: Path) -> tuple[Path | None, str | None]:
    """(file, None) when `raw` names an existing file inside `root`, else (None, why)."""
    if "shared" in Path(raw).parts:
        return None, "a note outside the repository (shared/)"
    target = (root / raw.lstrip("/") if raw.startswith("/") else base / raw).resolve()
    if raw.startswith("/") or not target.is_relative_to(root):
        return None, "a path outside the repository"
    if not target.is_file():
        return None, f"no file {target.relative_to(root).as_posix()} in the repository"
    return target, None


def _is_checked_plain(raw: str) -> bool:
    if raw.startswith(("docs/", "./", "../", "/")) or "shared" in Path(raw).parts:
        return True
    return "/" not in raw and raw in NOTE_NAMES


def scan_text(text: str, rel: str, root: Path = ROOT) -> list[str]:
    """Problems (`rel:line: why`) with the citations in `text`, the content of file `rel` under `root`."""
    root = root.resolve()
    problems: list[str] = []
    citing = (root / rel).resolve()
    is_md = rel.endswith(".md")
    is_note = rel.startswith("docs/papers/") and is_md and not rel.endswith("README.md")

    def check_sections(file: Path, sections: list[str], lineno: int, shown: str) -> None:
        heads = list(_headings_of(file))
        for s in sections:
            if not section_matches(s, heads):
                problems.append(f"{rel}:{lineno}: {shown} §{s}: no heading §{s} in {file.relative_to(root).as_posix()}")

    for lineno, line in enumerate(text.splitlines(), 1):
        line = _URL.sub(lambda m: " " * len(m.group()), line)
        for m in _LINK.finditer(line) if is_md else ():
            target = m["target"]
            path, _, anchor = target.partition("#")
            if path.endswith(".md") and not re.match(r"[a-z]+:", path):
                file, why = _resolve(path, citing.parent, root)
                if why:
                    problems.append(f"{rel}:{lineno}: link ({target}): {why}")
                elif anchor and not any(slug(h) == anchor for h in _headings_of(file)):
                    problems.append(f"{rel}:{lineno}: link ({target}): no heading with anchor #{anchor}")
        if is_md:  # a link's text is not scanned further
            line = _LINK.sub(lambda m: " " * len(m.group()), line)
        current: Path | None = citing if is_note else None
        current_shown = rel
        for m in _TOKEN.finditer(line):
            if m["path"]:
                raw = m["path"]
                cited = m["sec"] or m["slug"]
                if not cited and not _is_checked_plain(raw):
                    current = None
                    continue
                file, why = _resolve(raw, root, root)
                if why:
                    problems.append(f"{rel}:{lineno}: {raw}{' §' + cited if cited else ''}: {why}")
                    current = None
                    continue
                current, current_shown = file, raw
                if m["slug"]:
                    check_sections(file, [m["slug"]], lineno, raw)
                elif m["sec"]:
                    check_sections(file, [s for s in (m["sec"], m["end"]) if s], lineno, raw)
            elif current is not None:
                check_sections(current, [s for s in (m["bsec"], m["bend"]) if s], lineno, current_shown)
    return problems


def scanned_files(root: Path = ROOT) -> list[Path]:
    files: list[Path] = []
    for name in SCANNED:
        top = root / name
        if top.is_file():
            files.append(top)
        elif top.is_dir():
            for p in sorted(top.rglob("*")):
                parts = p.relative_to(root).parts
                if any(part in SKIP_DIRS or part.startswith(".") for part in parts):
                    continue
                if p.is_file() and (p.suffix in SUFFIXES or p.name in BARE_FILES) and p.resolve() != SELF:
                    if name == "results/paper" and p.suffix != ".csv":
                        continue
                    files.append(p)
    return files


def test_all_citations_resolve():
    problems = []
    for path in scanned_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        problems += scan_text(text, path.relative_to(ROOT).as_posix())
    assert not problems, "citations that do not resolve inside the repository:\n" + "\n".join(problems)


def test_scanner_reports_bad_citations(tmp_path):
    (tmp_path / "docs" / "papers").mkdir(parents=True)
    (tmp_path / "docs" / "ctf.md").write_text("# CTF here\n\n## 1.2 Not the paper\n")
    notes = "# CTF\n\n## 1. Method\n\n### 1.2 Coarse labels\n\n## 2. More\n"
    (tmp_path / "docs" / "papers" / "ctf.md").write_text(notes)
    text = "\n".join(
        [
            "# ok [docs/papers/ctf.md §1.2], `docs/papers/ctf.md` §1, §2 and §1.2–2",  # 1: fine
            "# bare: ctf.md §1.2",  # 2: must not resolve to docs/ctf.md
            "# wrong section: docs/papers/ctf.md §1.3",  # 3
            "# inherited wrong section: docs/papers/ctf.md §1.2, §3",  # 4
            "# outside: ../shared/papers/ctf.md §1.2 and /" + "work/shared/papers/ctf.md",  # 5
            "# plain: docs/papers/missing.md, llamagen.md; not a citation: report.md",  # 6
            "# §2 is not §1.2's parent: docs/papers/ctf.md §1.2.1",  # 7
        ]
    )
    problems = scan_text(text, "alitok/fake.py", root=tmp_path)
    lines = sorted(int(p.split(":")[1]) for p in problems)
    assert lines == [2, 3, 4, 5, 5, 6, 6, 7], problems
    assert any("no file ctf.md" in p for p in problems)
    assert any("§3: no heading §3" in p for p in problems)
    assert sum("shared" in p for p in problems) == 2

    md = "See [the notes](papers/ctf.md#12-coarse-labels) and [gone](papers/ctf.md#9-nine), [x](nope.md).\n"
    problems = scan_text(md, "docs/guide.md", root=tmp_path)
    assert len(problems) == 2 and "#9-nine" in problems[0] and "nope.md" in problems[1], problems


def test_heading_rule():
    heads = ["1. Method", "1.2 Coarse labels", "2.1. Sizes", "Design choices and their sources"]
    assert section_matches("1", heads) and section_matches("1.2", heads) and section_matches("2.1", heads)
    assert not section_matches("2", heads) and not section_matches("1.2.1", heads) and not section_matches("3", heads)
    assert section_matches("design-choices-and-their-sources", heads)
