"""One set of results files per run, named by its date; the newest is the README's (issue 18 item 4)."""

import json
import os

import pytest

import readme
import report

RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "results")


def test_a_run_writes_its_dated_files_and_no_copies(tmp_path):
    with open(readme.newest_results(), encoding="utf-8") as f:
        results = json.load(f)
    report.write_all(results, str(tmp_path))
    stem = results["date"][:10]
    assert sorted(os.listdir(tmp_path)) == [f"{stem}.json", f"{stem}.md", f"{stem}.png"]


def test_the_newest_dated_file_is_the_latest_and_other_files_are_ignored(tmp_path):
    for name in ("2026-11-26.json", "2026-12-06.json", "2026-12-06.md", "notes.json", "latest.json"):
        (tmp_path / name).write_text("{}")
    assert readme.newest_results(str(tmp_path)) == str(tmp_path / "2026-12-06.json")


def test_no_results_file_is_an_error_naming_the_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        readme.newest_results(str(tmp_path))


def test_the_committed_results_hold_no_copies():
    # Every file of a run is named by its date: no latest.* beside them, byte for byte the same.
    names = os.listdir(RESULTS)
    assert names and all(readme.RESULTS_FILE.match(n.rsplit(".", 1)[0] + ".json") for n in names), names


def test_the_readme_section_links_the_runs_own_files():
    with open(readme.newest_results(), encoding="utf-8") as f:
        results = json.load(f)
    section = readme.section(results)
    stem = results["date"][:10]
    assert f"(tools/bench/results/{stem}.png)" in section and f"tools/bench/results/{stem}.json" in section
