"""The ``aliases`` setting: copy (default) or skip, at the top level and per table."""

from __future__ import annotations

import pytest
from keboola.component.exceptions import UserException

from configuration import Configuration

ENV = {"KBC_URL": "https://connection.keboola.com", "KBC_TOKEN": "aliases-test-0f3c9e"}


def build(**parameters):
    return Configuration.from_parameters({"mode": "sync", **parameters}, ENV)


def test_default_is_copy():
    assert build(tables=[{"source": "in.c-a.t"}]).tables[0].aliases == "copy"


def test_top_level_and_per_table():
    config = build(aliases="skip", tables=[{"source": "in.c-a.t"}, {"source": "in.c-a.u", "aliases": "copy"}])
    assert [t.aliases for t in config.tables] == ["skip", "copy"]


def test_bad_value_is_one_sentence():
    with pytest.raises(UserException, match="must be 'copy' or 'skip'"):
        build(aliases="materialise", tables=[{"source": "in.c-a.t"}])
