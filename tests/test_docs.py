"""The docs checked against the code: flags, JSON keys, examples, the layout, README links.

Each check reads the docs as a reader would (the usage page's flags, the schema page's key
tables, the layout block) and compares them with what the code has (the argument parsers, a
real report's keys, the package's modules), in both directions where both can drift.
"""

from __future__ import annotations

import json
import re
import shlex
import unicodedata
from pathlib import Path

import pytest

from conftest import FAST_TIMING, run_cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PACKAGE = ROOT / "submodel_profiler"

FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def _parser_flags() -> set[str]:
    from submodel_profiler.cli import build_compare_parser, build_parser

    return {
        option
        for parser in (build_parser(), build_compare_parser())
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--")
    }


# --- flags -------------------------------------------------------------------------------------


def test_every_cli_flag_is_on_the_usage_page_and_every_flag_there_exists():
    # A flag is documented by a row of its own in one of the page's flag tables.
    first_cells = [
        line.split("|")[1]
        for line in _text(DOCS / "usage.md").splitlines()
        if line.startswith("| `")
    ]
    documented = {flag for cell in first_cells for flag in FLAG.findall(cell)}
    flags = _parser_flags()
    assert flags - documented == set(), "flags missing from docs/usage.md"
    assert documented - flags == set(), "docs/usage.md names flags the CLI does not have"


def _named_flags(text: str) -> set[str]:
    """Flags a page names as ours: inline code that starts with a flag, and command lines of
    `python -m submodel_profiler` in code blocks (other tools' flags, pip's or mkdocs', are
    written in other command lines)."""
    named = {FLAG.match(c).group() for c in INLINE_CODE.findall(text) if FLAG.match(c)}
    for block in FENCE.findall(text):
        for line in block.splitlines():
            if "submodel_profiler" in line or "submodel-profiler" in line:
                named |= set(FLAG.findall(line.split("#")[0]))
    return named


@pytest.mark.parametrize("page", [README, *_pages()], ids=lambda p: p.name)
def test_every_flag_a_page_names_exists(page):
    assert _named_flags(_text(page)) - _parser_flags() == set()


def test_the_flag_check_catches_an_unknown_flag():
    text = "Use `--no-such-flag` or\n```bash\npython -m submodel_profiler M --nor-this\n```\n"
    assert _named_flags(text) - _parser_flags() == {"--no-such-flag", "--nor-this"}


# --- JSON keys ---------------------------------------------------------------------------------

# A documented type that the key check does not descend into: its own table (TimeStats, Delta),
# a whole report (a sweep's entries), or a map whose keys are data ({op type: int}).
_OWN_TABLES = ("TimeStats", "Delta")


def _schema_sections() -> dict[str, dict[str, str]]:
    """{section heading: {key path: type}} from the key tables of docs/schema.md."""
    sections, heading = {}, None
    for line in _text(DOCS / "schema.md").splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if "|" in line else []
        if heading and len(cells) >= 2 and re.fullmatch(r"`[^`]+`", cells[0]):
            sections.setdefault(heading, {})[cells[0].strip("`")] = cells[1].replace("\\|", "|")
    return sections


def _is_leaf(type_: str) -> bool:
    return type_.startswith("{") or type_ == "report" or any(t in type_ for t in _OWN_TABLES)


def _keys(value, documented: dict[str, str], path: str = "") -> set[str]:
    """Key paths of a JSON value (`a.b`, `list[].key`), not descending into documented leaves."""
    if path and path in documented and _is_leaf(documented[path]):
        return {path}
    if isinstance(value, dict):
        keys = set()
        for k, v in value.items():
            keys |= _keys(v, documented, f"{path}.{k}" if path else k)
        return keys
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return set().union(*(_keys(v, documented, path + "[]") for v in value))
    return {path}


def _report_keys_documented() -> dict[str, str]:
    skip = ("TimeStats", "A batch-size sweep", "A comparison")
    out = {}
    for heading, keys in _schema_sections().items():
        if heading not in skip:
            out.update(keys)
    return out


@pytest.fixture(scope="module")
def real_report(keras):
    """A real report with every part filled: timing, step stats, the callback, a parent."""
    from submodel_profiler import profile_model

    x = keras.Input((6, 8), name="tokens")
    a = keras.layers.MultiHeadAttention(2, 4, name="mha")(x, x)
    y = keras.layers.Dense(8, activation="relu", name="dense")(keras.layers.Add(name="res")([x, a]))
    model = keras.Model(x, y + 1.0)
    return profile_model(
        model,
        timing_settings=FAST_TIMING,
        step_stats_runs=1,
        callback_samples=1,
        depth=2,
        trace=True,
    )


def test_every_report_key_is_documented_and_every_documented_key_is_in_a_report(real_report):
    documented = _report_keys_documented()
    real = _keys(real_report.to_dict(), documented)
    assert real - set(documented) == set(), "keys of a real report missing from docs/schema.md"
    assert set(documented) - real == set(), "docs/schema.md lists keys a real report lacks"


def test_time_stats_keys_are_documented(real_report):
    documented = {k.removeprefix("TimeStats.") for k in _schema_sections()["TimeStats"]}
    assert set(real_report.to_dict()["totals"]["whole_model_time_us"]) == documented


def test_sweep_and_comparison_keys_are_documented(keras, real_report):
    from submodel_profiler.compare import compare_reports
    from submodel_profiler.sweep import profile_sweep

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d")])
    sweep = profile_sweep(model, (1, 2), timing=False)
    documented = _schema_sections()["A batch-size sweep"]
    assert _keys(sweep.to_dict(), documented) == set(documented)

    comparison = compare_reports(real_report, real_report, "a.json", "b.json").to_dict()
    section = _schema_sections()["A comparison"]
    documented = {k: t for k, t in section.items() if not k.startswith("Delta.")}
    assert _keys(comparison, documented) == set(documented)
    deltas = {k.removeprefix("Delta.") for k in section if k.startswith("Delta.")}
    assert set(comparison["totals"]["flops"]) == deltas
    sides = re.findall(r"\w+", documented["comparison.a"])
    assert sorted(comparison["comparison"]["a"]) == sorted(sides)


def test_the_key_check_catches_an_undocumented_key():
    documented = {"a": "int", "m": "{op type: int}"}
    assert _keys({"a": 1, "b": {"c": 2}, "m": {"Add": 1}}, documented) == {"a", "b.c", "m"}


def test_csv_columns_are_row_keys_or_named_on_the_schema_page():
    from submodel_profiler.renderers import CSV_COLUMNS

    row_keys = {k.removeprefix("layers[].") for k in _report_keys_documented()}
    csv_section = _text(DOCS / "schema.md").split("## CSV")[1].split("\n## ")[0]
    named = set(INLINE_CODE.findall(csv_section))
    assert [c for c in CSV_COLUMNS if c not in row_keys and c not in named] == []


# --- examples ----------------------------------------------------------------------------------


def _marked_examples() -> list[tuple[str, str]]:
    examples = []
    for page in _pages():
        for m in re.finditer(
            r"<!-- docs-test: run -->\s*\n```[^\n]*\n(.*?)^```", _text(page), re.S | re.M
        ):
            examples += [(page.name, line) for line in m.group(1).splitlines() if line.strip()]
    return examples


def test_there_are_marked_examples():
    assert len(_marked_examples()) >= 3


@pytest.mark.architecture
def test_marked_usage_examples_run_as_written(tmp_path):
    # One folder for the page's lines, in order: a later line may read what an earlier wrote.
    for page, line in _marked_examples():
        argv = shlex.split(line)
        assert argv[:3] == ["python", "-m", "submodel_profiler"], f"{page}: {line}"
        result = run_cli(argv[3:], cwd=tmp_path)
        assert result.returncode == 0, f"{page}: {line}\n{result.stderr[-2000:]}"
    report = json.loads((tmp_path / "small.json").read_text())
    assert report["cross_check"]["flops_exact"]


# --- layout ------------------------------------------------------------------------------------


def _listed_modules() -> set[str]:
    """Module paths in the layout block of docs/development.md (`renderers/` nests its lines)."""
    layout = _text(DOCS / "development.md").split("## Layout")[1]
    block = FENCE.search(layout).group(1)
    listed, folder, folder_indent = set(), "", -1
    for line in block.splitlines():
        indent = len(line) - len(line.lstrip())
        entry = line.strip().split(" ")[0]
        if indent <= folder_indent:
            folder, folder_indent = "", -1
        if entry.endswith("/") and indent > 0:
            folder, folder_indent = entry, indent
        elif entry.endswith(".py"):
            listed.add(folder + entry)
    return listed


def test_every_module_is_in_the_layout_and_every_listed_module_exists():
    modules = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")}
    listed = _listed_modules()
    assert modules - listed == set(), "modules missing from docs/development.md's layout"
    assert listed - modules == set(), "docs/development.md lists modules that do not exist"


# --- the README --------------------------------------------------------------------------------


def _slug(heading: str) -> str:
    """Python-Markdown's toc slug of a heading (what MkDocs links to)."""
    text = re.sub(r"[`*]", "", heading)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _anchors(page: Path) -> set[str]:
    text = FENCE.sub("", _text(page))
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


def test_readme_is_a_front_door():
    assert len(_text(README).splitlines()) <= 200


def test_readme_links_resolve():
    for target in LINK.findall(_text(README)):
        if "://" in target:
            continue
        path, _, anchor = target.partition("#")
        assert (ROOT / path).exists(), target
        if anchor:
            assert anchor in _anchors(ROOT / path), target


def test_slugs_follow_python_markdown():
    assert _slug("Inside composite layers: `--depth`") == "inside-composite-layers-depth"
    assert _slug("Repeats, warm-up and the budget") == "repeats-warm-up-and-the-budget"


# --- each fact once ----------------------------------------------------------------------------


def _sentences(text: str) -> set[str]:
    prose = FENCE.sub("", text)
    prose = re.sub(r"^\|.*$", "", prose, flags=re.M)  # tables hold key lists, not prose
    words = re.sub(r"\s+", " ", prose)
    return {s.strip().lower() for s in re.split(r"(?<=[.!?])\s", words) if len(s.split()) >= 12}


def test_no_sentence_is_stated_on_two_pages():
    pages = [README, *_pages()]
    seen: dict[str, str] = {}
    repeated = []
    for page in pages:
        for sentence in _sentences(_text(page)):
            if sentence in seen:
                repeated.append((seen[sentence], page.name, sentence))
            seen.setdefault(sentence, page.name)
    assert repeated == []
