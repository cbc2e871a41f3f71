"""Figures that cannot go stale: a benchmark writes its table into the docs, with when, where and on what code.

    python benchmarks/figures.py render [NAME ...]   # rewrite the docs' marker blocks from docs/figures/*.json
    python benchmarks/figures.py check               # missing results, blocks that differ, stale figures

A benchmark calls `begin()` before it measures and `record(NAME, rows, ...)` after: docs/figures/NAME.json (tracked,
unlike benchmarks/out/) holds the rows, the date, the machine, the load before and after, the commit (and whether
code was uncommitted: changes under docs/, such as the figures an earlier benchmark wrote, do not count), the
command line and the source paths measured; then every docs page holding the block `<!-- figures:NAME -->` ...
`<!-- /figures:NAME -->` gets the table and a one-line caption rewritten between the markers. `check` (and
tests/test_figures.py) fail on a block without its results file or one that differs from its rendering (edited by
hand, or not re-rendered) and on a table outside any block that NOT_MEASURED does not name, and name the figures
whose measured code has a newer commit than the one they were measured at.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from viper.atomic import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
# Tables in the docs that no benchmark writes, by their header row, and why: facts, not measurements (or the one
# measurement no machine here can repeat). Any other table outside a figure block fails `check`.
NOT_MEASURED = {
    "| extra | what for |": "what each install extra adds",
    "| modality | offline default": "the extractors and their sizes",
    "| case | behaviour |": "what bad input gets (each row a test)",
    "| preset | latents × width": "the presets' shapes and parameter counts (asserted in tests)",
    "| option (`TrainConfig` / `viper train`) | what it does |": "training options",
    "| step | result | GPU utilisation": "the last GPU run (2026-11-26), before figures were recorded: "
                                          "gpu_check.py records `gpu-check` when run on a GPU",
    "| precision | train: ours | transformers |": "the same GPU run",
}
BLOCK = re.compile(r"<!-- figures:(?P<name>[\w.-]+) -->\n(?P<body>.*?)<!-- /figures:(?P=name) -->", re.DOTALL)


def begin() -> dict:
    """When the measurement began and the load then: taken before a benchmark starts, as the run adds its own."""
    return {"started": utc(), "load": load_average()}


def record(name: str, rows: list[dict], *, began: dict, columns: list[tuple], measures: list[str], notes: str = "",
           root: Path = REPO) -> Path:
    """Write docs/figures/`name`.json and re-render the pages that show it. `columns`: (key, header) or (key,
    header, format string such as "{:.2f} s") in table order; `measures`: the repository paths of the code measured,
    whose newer commits make the figure stale."""
    missing = [path for path in measures if not (root / path).exists()]
    if missing:
        raise ValueError(f"figure {name}: measured paths not in the repository: {', '.join(missing)}")
    commit = git(root, "rev-parse", "HEAD")
    results = {
        "name": name, "notes": notes, "command": command_line(root),
        "started": began["started"], "finished": utc(),
        "load": {"before": began["load"], "after": load_average()},
        "machine": machine(),
        "git": {"commit": commit, "commit_time": int(git(root, "show", "-s", "--format=%ct", commit)),
                "dirty": bool(git(root, "status", "--porcelain", "--untracked-files=no", "--", ".", ":!docs"))},
        "measures": list(measures),
        "columns": [{"key": column[0], "header": column[1], "format": column[2] if len(column) > 2 else "{}"}
                    for column in columns],
        "results": rows,
    }
    path = results_path(root, name)
    atomic_write_text(path, json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    pages = render([name], root)
    print(caption(results))
    print(f"figure {name}: {path.relative_to(root)}"
          + (f", rendered into {', '.join(pages)}" if pages else f"; no docs page holds <!-- figures:{name} -->"))
    return path


def load_average() -> list[float]:
    """`uptime`'s three figures: processes running or waiting over the last 1, 5 and 15 minutes."""
    return [round(value, 2) for value in os.getloadavg()]


def utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()


def command_line(root: Path) -> str:
    """How to run the benchmark again from the repository's root: `python` and the script's relative path."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(root) if script.is_relative_to(root) else script
    return shlex.join(["python", str(shown), *sys.argv[1:]])


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo() if line.startswith("model name")), None)
    return {"platform": platform.platform(), "system": platform.system(), "arch": platform.machine(),
            "python": platform.python_version(), "cpu": cpu or platform.processor() or platform.machine(),
            "cores": os.cpu_count()}


def cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:  # not Linux
        return []


def results_path(root: Path, name: str) -> Path:
    return root / "docs" / "figures" / f"{name}.json"


def rendering(results: dict) -> str:
    """What goes between the markers: the table, then one line saying what made it."""
    columns = results["columns"]
    lines = ["| " + " | ".join(column["header"] for column in columns) + " |", "|" + "---|" * len(columns)]
    for row in results["results"]:
        cells = ["—" if row.get(column["key"]) is None else column["format"].format(row[column["key"]])
                 for column in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n" + "\n".join(lines) + "\n\n" + caption(results) + "\n"


def caption(results: dict) -> str:
    commit = results["git"]["commit"][:7] + (" with uncommitted changes" if results["git"]["dirty"] else "")
    load, cpu = results["load"], results["machine"]
    notes = f"; {results['notes']}" if results["notes"] else ""
    return (f"Measured by `{results['command']}`, {results['finished'][:16].replace('T', ' ')} UTC, commit {commit}, "
            f"{cpu['cpu']} ({cpu['cores']} cores, {cpu['system']} {cpu['arch']}), load {load['before'][0]:.1f} "
            f"before and {load['after'][0]:.1f} after{notes}.")


def pages(root: Path) -> list[Path]:
    return sorted((root / "docs").rglob("*.md"))


@dataclass
class Block:
    """One marker block in a docs page."""

    page: Path
    name: str
    body: str


def blocks(root: Path) -> list[Block]:
    return [Block(page, match["name"], match["body"])
            for page in pages(root) for match in BLOCK.finditer(page.read_text(encoding="utf-8"))]


def render(names: list[str] | None = None, root: Path = REPO) -> list[str]:
    """Rewrite the blocks of `names` (all when None) from their results files; the pages rewritten."""
    rewritten = []
    for page in pages(root):
        text = page.read_text(encoding="utf-8")

        def fill(match: re.Match) -> str:
            name = match["name"]
            if (names is not None and name not in names) or not results_path(root, name).is_file():
                return match[0]
            body = rendering(json.loads(results_path(root, name).read_text(encoding="utf-8")))
            return f"<!-- figures:{name} -->\n{body}<!-- /figures:{name} -->"

        new = BLOCK.sub(fill, text)
        if new != text:
            atomic_write_text(page, new)
            rewritten.append(str(page.relative_to(root)))
    return rewritten


def problem(block: Block, root: Path = REPO) -> str | None:
    """What is wrong with a block: its results file is missing, or it differs from its rendering (the docs would
    show figures no benchmark wrote)."""
    where, path = f"{block.page.relative_to(root)}: figure {block.name}", results_path(root, block.name)
    if not path.is_file():
        return f"{where}: no results file {path.relative_to(root)} (run {recorder(root, block.name)})"
    if block.body != rendering(json.loads(path.read_text(encoding="utf-8"))):
        return (f"{where}: the block differs from its results (edited by hand, or not re-rendered: "
                f"python benchmarks/figures.py render {block.name})")
    return None


def recorder(root: Path, name: str) -> str:
    """The benchmark that records figure `name`, to name in a message."""
    scripts = sorted((root / "benchmarks").glob("*.py"))
    found = [path for path in scripts if f'record("{name}"' in path.read_text(encoding="utf-8")]
    return f"python {found[0].relative_to(root)}" if found else f'the benchmark that calls record("{name}", ...)'


def problems(root: Path = REPO) -> list[str]:
    return [found for block in blocks(root) if (found := problem(block, root))] + tables_by_hand(root)


def tables_by_hand(root: Path = REPO) -> list[str]:
    """Tables outside figure blocks whose header is not in NOT_MEASURED: measured numbers typed in by hand."""
    found = []
    for page in pages(root):
        text = BLOCK.sub("", page.read_text(encoding="utf-8"))
        lines = text.splitlines()
        for number, line in enumerate(lines):
            starts = line.startswith("|") and (number == 0 or not lines[number - 1].startswith("|"))
            if starts and not any(line.startswith(header) for header in NOT_MEASURED):
                found.append(f"{page.relative_to(root)}: a table no benchmark writes: {line[:80]} (record it with "
                             "figures.record, or add its header to NOT_MEASURED with the reason)")
    return found


def stale(root: Path = REPO) -> list[str]:
    """Figures whose measured code has a commit newer than the one measured (a dirty tree counts as its commit):
    numbers that may no longer hold, to re-measure."""
    found = []
    for name in sorted({block.name for block in blocks(root)}):
        path = results_path(root, name)
        if not path.is_file():
            continue
        results = json.loads(path.read_text(encoding="utf-8"))
        measured = results["git"]["commit_time"]
        for source in results["measures"]:
            last = git(root, "log", "-1", "--format=%ct", "--", source)
            if last and int(last) > measured:
                found.append(f"figure {name}: {source} last changed {day(int(last))}, after the measured commit "
                             f"{results['git']['commit'][:7]} of {day(measured)} (`{results['command']}`)")
    return found


def day(seconds: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds))


def main() -> int:
    args = sys.argv[1:]
    if args[:1] == ["render"]:
        rewritten = render(args[1:] or None)
        print("rewrote " + ", ".join(rewritten) if rewritten else "every block already matches its results")
        return 0
    if args[:1] == ["check"]:
        failing, old = problems(), stale()
        for line in failing + [f"stale: {line}" for line in old]:
            print(line)
        print(f"{len(blocks(REPO))} blocks; {len(failing)} problems (a block missing its results or differing from "
              f"them, a table typed in by hand); {len(old)} stale sources")
        return 1 if failing else 0
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
