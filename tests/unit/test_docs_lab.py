"""The lab guide (docs/lab/) against the code it describes: scenarios, profile rows, links, languages.

Checks only what is registered: a scenario in ``lab.scenarios.SCENARIOS`` must have its page in both
languages and a row in both index tables; a ``lab scenario NAME`` in the docs must be registered; a
``LAB_SET``/``--set`` row must exist in minilab/profiles.py. A link to the page of a scenario that the
guide announces but that is not registered yet (``PLANNED``) may dangle until the scenario lands; every
other relative link must resolve.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lab.scenarios import SCENARIOS
from minilab.profiles import BY_NAME, Level

DOCS = Path(__file__).resolve().parents[2] / "docs" / "lab"
SECTIONS = ("cluster-to-control-plane", "apiserver-to-kubelet", "apiserver-to-nodes-pods-services", "ssh-tunnels")
PLANNED = {1: "kubelet-mitm", 2: "kubelet-relay", 3: "kubelet-api", 4: "apiserver-proxy", 5: "sa-token",
           6: "bootstrap", 7: "ssh-tunnel", 8: "agent-tunnel", 9: "secure-port"}
INDEXES = ("README.md", "README.de.md")

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
SCENARIO_CMD = re.compile(r"\b(?:lab|lab-harness\.sh) scenario ([a-z][a-z0-9-]*)")
SET_ITEMS = re.compile(r"(?:LAB_SET=|--set[ =])([a-z0-9=,-]+)")
TABLE_ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*`([a-z0-9-]+)`\s*\|", re.MULTILINE)
CIS_ID = re.compile(r"\b[1-5]\.[1-9]\.\d{1,2}\b")


def pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def page_ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def scenario_rows(index: str) -> dict[str, int]:
    return {name: int(num) for num, name in TABLE_ROW.findall((DOCS / index).read_text())}


@pytest.mark.parametrize("name", SECTIONS)
@pytest.mark.parametrize("suffix", [".md", ".de.md"], ids=["en", "de"])
def test_every_section_page_exists_in_both_languages(name: str, suffix: str) -> None:
    assert (DOCS / f"{name}{suffix}").is_file()


@pytest.mark.parametrize("index", INDEXES)
def test_the_index_links_every_section_page(index: str) -> None:
    text = (DOCS / index).read_text()
    suffix = ".de.md" if index.endswith(".de.md") else ".md"
    missing = [s for s in SECTIONS if f"]({s}{suffix})" not in text]
    assert not missing, f"{index} does not link {missing}"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_registered_scenario_has_its_pages_and_index_rows(name: str) -> None:
    for suffix in (".md", ".de.md"):
        assert (DOCS / f"{name}{suffix}").is_file(), f"docs/lab/{name}{suffix} is missing"
    for index in INDEXES:
        assert name in scenario_rows(index), f"{index}: no row | N | `{name}` | ..."


@pytest.mark.parametrize("index", INDEXES)
def test_the_index_tables_number_the_scenarios_as_the_guide_does(index: str) -> None:
    assert scenario_rows(index) == {name: num for num, name in PLANNED.items()}, f"{index}: the nine rows of PLANNED"


@pytest.mark.parametrize("page", pages(), ids=page_ids(pages()))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text()):
        path = target.split("#", 1)[0]
        if not path or re.match(r"[a-z]+:", path) or path.startswith("/"):
            continue  # an anchor, an external URL, or the source page's own site links
        if (page.parent / path).exists():
            continue
        stem = Path(path).name.removesuffix(".md").removesuffix(".de")
        if page.parent == DOCS and stem in PLANNED.values() and stem not in SCENARIOS:
            continue  # the page of a scenario that is not registered yet
        broken.append(target)
    assert not broken, f"{page.name}: links to missing files {broken}"


@pytest.mark.parametrize("page", pages(), ids=page_ids(pages()))
def test_lab_scenario_commands_name_registered_scenarios(page: Path) -> None:
    named = set(SCENARIO_CMD.findall(page.read_text()))
    assert named <= set(SCENARIOS), f"{page.name}: not registered: {sorted(named - set(SCENARIOS))}"


@pytest.mark.parametrize("page", pages(), ids=page_ids(pages()))
def test_lab_set_rows_exist_in_the_profile_table(page: Path) -> None:
    bad = []
    for items in SET_ITEMS.findall(page.read_text()):
        for item in filter(None, items.split(",")):
            row, _, level = item.partition("=")
            if row not in BY_NAME or level not in {lv.value for lv in Level}:
                bad.append(item)
    assert not bad, f"{page.name}: unknown row or level in {bad} (rows: {', '.join(BY_NAME)})"


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.de.md")), ids=page_ids(sorted(DOCS.glob("*.de.md"))))
def test_english_and_german_page_cite_the_same_cis_checks(page: Path) -> None:
    english = page.with_name(page.name.removesuffix(".de.md") + ".md")
    assert english.is_file(), f"{page.name} has no English page"
    de, en = set(CIS_ID.findall(page.read_text())), set(CIS_ID.findall(english.read_text()))
    assert de == en, f"{page.name}: only in German {sorted(de - en)}, only in English {sorted(en - de)}"


def test_the_checks_cover_something() -> None:
    """Guards the regexes above: they must find what the guide is known to contain."""
    text = (DOCS / "README.md").read_text()
    assert SCENARIO_CMD.search(text) and SET_ITEMS.search(text) and LINK.search(text)
    assert scenario_rows("README.md") and CIS_ID.search((DOCS / "apiserver-to-kubelet.md").read_text())
