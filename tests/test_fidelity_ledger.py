"""docs/fidelity.md cannot drift from the code: each block's defaults are the composed config's,
and every paper section the code and configs cite exists."""

import re

import pytest
import yaml
from conftest import ROOT, compose_train
from omegaconf import OmegaConf

LEDGER = ROOT / "docs" / "fidelity.md"
# The defaults each block states, as `key=value` on its "- this repo:" (or "- demo run:") line.
DEFAULTS_LINE = re.compile(r"^- (this repo|demo run): (.*)$", re.M)
SETTING = re.compile(r"`([a-z_]+(?:\.[a-z_0-9]+)*)=([^` ]+)`")

# The section titles of the paper (Krizhevsky, Sutskever, Hinton, NIPS 2012). Kept here, not read
# from ../shared/paper.md (a build sheet without the paper's headings), so the test runs anywhere.
PAPER_SECTIONS = {
    "1": "Introduction",
    "2": "The Dataset",
    "3": "The Architecture",
    "3.1": "ReLU Nonlinearity",
    "3.2": "Training on Multiple GPUs",
    "3.3": "Local Response Normalization",
    "3.4": "Overlapping Pooling",
    "3.5": "Overall Architecture",
    "4": "Reducing Overfitting",
    "4.1": "Data Augmentation",
    "4.2": "Dropout",
    "5": "Details of learning",
    "6": "Results",
    "6.1": "Qualitative Evaluations",
    "7": "Discussion",
}
# "section 3.3", "sections 3.3, 3.4 and 4.1", "Section 5's", "§4.1".
CITED = re.compile(r"(?:[Ss]ections?|§)\s*((?:\d+(?:\.\d+)?(?:\s*(?:,|/|and|or)\s*)?)+)")


def ledger_settings() -> list[tuple[str, str, str]]:
    """(which line, key, value) for every default the ledger states."""
    return [
        (kind, key, value) for kind, line in DEFAULTS_LINE.findall(LEDGER.read_text()) for key, value in SETTING.findall(line)
    ]


def test_the_ledger_states_defaults_for_the_choices_this_issue_added():
    keys = {key for _, key, _ in ledger_settings()}
    assert {"model.lrn_scope", "test_checkpoint", "data.stats_images", "trainer.precision"} <= keys
    assert len(keys) > 30


@pytest.mark.parametrize("kind, experiment", [("this repo", "alexnet_paper"), ("demo run", "demo")])
def test_every_default_in_the_ledger_is_the_composed_configs(kind, experiment):
    cfg = compose_train(f"experiment={experiment}")
    wrong = []
    for line_kind, key, value in ledger_settings():
        if line_kind != kind:
            continue
        actual = OmegaConf.select(cfg, key, throw_on_missing=True)
        if actual != yaml.safe_load(value):
            wrong.append(f"{key}: the ledger says {value}, experiment={experiment} composes {actual!r}")
    assert not wrong, "\n".join(wrong)


def test_the_ledger_cites_the_paper_not_a_file_beside_the_checkout():
    assert "paper.md" not in LEDGER.read_text()


def section_numbers(text: str) -> list[str]:
    return [number for group in CITED.findall(text) for number in re.findall(r"\d+(?:\.\d+)?", group)]


def cited_sections() -> list[tuple[str, str]]:
    """(file:line, section number) for every section of the paper cited in src/ and conf/."""
    found = []
    for path in sorted([*ROOT.glob("src/**/*.py"), *ROOT.glob("conf/**/*.yaml")]):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            found += [(f"{path.relative_to(ROOT)}:{n}", number) for number in section_numbers(line)]
    return found


def test_every_section_cited_in_the_code_and_configs_exists():
    cited = cited_sections()
    assert len(cited) > 30  # the pattern finds them: "section 3.3", "sections 3.3, 3.4", "Section 5's"
    missing = [f"{where}: section {number}" for where, number in cited if number not in PAPER_SECTIONS]
    assert not missing, "\n".join(missing)


def test_the_section_pattern_reads_lists_and_rejects_what_is_not_a_section():
    assert section_numbers("sections 3.3, 3.4 and 4.1; §5; section 3.2 / 8.1") == ["3.3", "3.4", "4.1", "5", "3.2", "8.1"]
    assert section_numbers("the 6.1 release of a library, 2 sections") == []
