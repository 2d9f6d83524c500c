"""docs/troubleshooting.md stays in step with the code: every user-facing message of src/ (found by
scripts/error_messages.py from the AST) has an entry, and the guide lists no message the code no longer has."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "troubleshooting.md"
_spec = importlib.util.spec_from_file_location("error_messages", ROOT / "scripts" / "error_messages.py")
em = importlib.util.module_from_spec(_spec)
sys.modules["error_messages"] = em
_spec.loader.exec_module(em)


@pytest.fixture(scope="module")
def messages():
    return em.extract()


@pytest.fixture(scope="module")
def guide():
    return GUIDE.read_text(encoding="utf-8")


def _src_sources() -> dict[str, str]:
    src = ROOT / "src"
    return {str(p.relative_to(src)): p.read_text(encoding="utf-8") for p in sorted(src.rglob("*.py"))}


def test_every_message_of_the_code_is_in_the_guide(messages, guide):
    missing = [p for p in em.check_guide(messages, guide) if not p.startswith("in the guide but")]
    assert not missing, "document these in docs/troubleshooting.md:\n" + "\n".join(missing)


def test_the_guide_lists_no_message_the_code_no_longer_has(messages, guide):
    stale = [p for p in em.check_guide(messages, guide) if p.startswith("in the guide but")]
    assert not stale, "remove these from docs/troubleshooting.md:\n" + "\n".join(stale)


def test_every_id_appears_once_in_the_guide(guide):
    ids = em.guide_ids(guide)
    assert len(ids) == len(set(ids))


KNOWN = [
    # UserException with a constant
    "The state (in/state.json) is not valid JSON; reset the state of the configuration and run again.",
    # a validator's _Bad template, rendered by configuration._validate
    "The parameter '{path}' must be true or false, not {kind}.",
    # a _Bad template finished by the text its call site passes (_string_or_env's when_missing)
    (
        "The parameter '{path}' is missing and Keboola forwarded no token; enter a Storage API token of the {which} "
        "project."
    ),
    # describe_failure through a storage_errors block
    "Reading table {table} failed: {detail}.",
    "Listing the tables of bucket {bucket} failed: {detail}.",
    # a StorageApiError message assigned in one of several branches
    (
        "The Storage API token for {base_url} is invalid or expired ({code}). Create a new token in the project "
        "(Settings > API Tokens) and put it in the configuration."
    ),
    # a dict of sentences in a %-formatted log line (STOPPED_NEXT_RUN)
    (
        "The job was stopped (SIGTERM) before it finished; tables it had not committed keep their previous state and "
        "are copied by the next run."
    ),
    # a warning
    "Table {table_id}: it was created by another job while this run was creating it; loading into it instead.",
    # a function of src that returns the sentence (_config_file_error)
    "The configuration file config.json is missing from the data folder; check KBC_DATADIR.",
    # a sync action's wrapper (_action_errors) with the text of its call site
    "Listing the buckets of the destination project ({url}) failed: {exc}",
]


@pytest.mark.parametrize("text", KNOWN)
def test_the_extractor_finds_known_messages(messages, text):
    assert text in {m.text for m in messages}


def test_the_extractor_finds_many_messages_in_every_part(messages):
    assert len(messages) > 150
    modules = {m.module for m in messages}
    for module in ("component.py", "configuration.py", "workflows/plan.py", "storage_api/errors.py"):
        assert module in modules


def test_info_lines_and_pass_throughs_are_not_messages(messages):
    texts = {m.text for m in messages}
    assert not any(t.startswith("Syncing {") for t in texts)  # logger.info
    assert "{exc}" not in texts and "{value}" not in texts  # logger.error("%s", exc), UserException(redact(...))


NEW_MODULE = """
import logging

from keboola.component.exceptions import UserException

logger = logging.getLogger(__name__)


def check(dest, exc):
    if dest:
        raise UserException(f"Table {dest} cannot be frobnicated ({exc}); unfrobnicate it first.")
    logger.warning("Table %s was frobnicated twice.", dest)
    logger.info("Table %s is fine.", dest)
"""


def test_a_new_message_is_reported_missing_from_the_guide(guide):
    sources = _src_sources()
    sources["workflows/frobnicate.py"] = NEW_MODULE
    messages = em.extract(em.Codebase(sources))
    new = [m for m in messages if m.module == "workflows/frobnicate.py"]
    assert [(m.text, m.kind) for m in new] == [
        ("Table {dest} cannot be frobnicated ({exc}); unfrobnicate it first.", "error"),
        ("Table {dest} was frobnicated twice.", "warning"),
    ]
    problems = em.check_guide(messages, guide)
    assert len(problems) == 2 and all("frobnicate" in p and p.startswith("missing from the guide") for p in problems)


def test_a_reworded_message_is_a_new_id(guide):
    sources = _src_sources()
    sources["state.py"] = sources["state.py"].replace(
        "starting without watermarks (tables are copied fully)", "starting without watermarks (full copies)", 1
    )
    problems = em.check_guide(em.extract(em.Codebase(sources)), guide)
    assert any(p.startswith("missing from the guide") and "(full copies)" in p for p in problems)
    assert any(p.startswith("in the guide but no longer in the code: the-state-is-not-a") for p in problems)


def test_the_guide_must_quote_the_message(messages, guide):
    first = messages[0]
    changed = guide.replace(f"`{first.text}`", "`something else`")
    assert any(first.id in p for p in em.check_guide(messages, changed))


def test_ids_are_stable_and_follow_the_text():
    text = "Table {dest} cannot be frobnicated; unfrobnicate it first."
    assert em.message_id(text) == em.message_id(text)
    assert em.message_id(text).startswith("table-cannot-be-frobnicated-unfrobnicate-")
    assert em.message_id(text) != em.message_id(text.replace("first", "now"))


def test_check_exits_1_naming_the_missing_message(tmp_path, capsys):
    assert em.main(["--check", str(GUIDE)]) == 0
    first = em.extract()[0]
    partial = tmp_path / "guide.md"
    partial.write_text(GUIDE.read_text(encoding="utf-8").replace(f"<!-- id: {first.id} -->", ""), encoding="utf-8")
    assert em.main(["--check", str(partial)]) == 1
    assert first.id in capsys.readouterr().out


def test_a_changed_describe_failure_stops_the_extractor():
    sources = _src_sources()
    sources["workflows/context.py"] = sources["workflows/context.py"].replace(
        "def describe_failure(exc: BaseException, action: str,", "def describe_failure(exc: BaseException, what: str,"
    )
    with pytest.raises(em.ExtractorError):
        em.extract(em.Codebase(sources))
