import itertools
import os

import pytest

from emulator import Emulator
from tests.e2e.harness import DataDir

_names = itertools.count(1)


# Every end-to-end test runs on the three file storage providers of Keboola stacks (S3, ABS, GCS).
PROVIDERS = os.environ.get("E2E_PROVIDERS", "aws,azure,gcp").split(",")

# Modules (and tests marked provider_independent) that test the component's logic rather than a provider's transfer
# run on the first provider in `make test` and on all three in `make reliability` (the other providers' variants
# are marked slow), so that `make test` stays under ten minutes on two cores.
LOGIC_MODULES = {
    "test_sync_fidelity",
    "test_deletes_api",
    "test_typed_tables",
    "test_many_tables",
    "test_branches",
    "test_aliases",
    "test_recipes",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        callspec = getattr(item, "callspec", None)
        provider = callspec.params.get("emulator") if callspec else None
        logic = item.module.__name__.rsplit(".", 1)[-1] in LOGIC_MODULES or item.get_closest_marker(
            "provider_independent"
        )
        if logic and provider not in (None, PROVIDERS[0]):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", params=PROVIDERS)
def emulator(request, tmp_path_factory):
    with Emulator(provider=request.param, workdir=tmp_path_factory.mktemp(f"emulator-{request.param}")) as emu:
        yield emu


@pytest.fixture(autouse=True)
def _reset_emulator(emulator):
    emulator.faults.clear()
    emulator.job_delay = 0.0
    yield
    emulator.faults.clear()
    emulator.job_delay = 0.0
    emulator.reset_clock()  # a test that moved the server clock leaves real time to the next one


@pytest.fixture
def source(emulator):
    """A fresh source project with a bucket in.c-sales holding two tables."""
    project = emulator.create_project(f"source-{next(_names)}")
    emulator.create_bucket(project.id, "sales")
    emulator.create_table(
        project.id,
        "in.c-sales.customers",
        'id,name,city\n1,Alice,Prague\n2,Bob,Brno\n3,"Carol, Jr.","Ostrava ""East"""\n',
        primary_key=["id"],
    )
    emulator.create_table(project.id, "in.c-sales.events", "ts,kind\n2024-01-01,open\n2024-01-02,close\n")
    return project


@pytest.fixture
def destination(emulator):
    return emulator.create_project(f"destination-{next(_names)}")


@pytest.fixture
def data_dir(tmp_path, emulator, source, destination):
    data = DataDir(tmp_path / "data")
    data.secrets |= {source.token, destination.token}
    return data


@pytest.fixture
def env(emulator):
    """What a component process needs to reach the emulator's file storage (no test hooks in the component)."""
    return dict(emulator.env)
