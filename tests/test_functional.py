"""Functional tests in Keboola's data-dir style (keboola-datadirtest): tests/functional/<case>/source/data is run
through src/component.py and out/ is compared byte for byte with expected/data/out. The source project lives in
the emulator; config.json reaches it through {{env.STORAGE_SYNC_URL}} and {{env.STORAGE_SYNC_TOKEN}}."""

from pathlib import Path

import pytest
from keboola.datadirtest import DataDirTester

from emulator import Emulator

HERE = Path(__file__).parent
PRODUCTS = (
    "sku,name,category,price\n"
    'A-1,Hammer,tools,12.50\nA-2,"Rake, wide",garden,20.00\nA-3,Kettle,kitchen,35.90\n'
    'A-4,"Saw ""Pro""",tools,44.00\nA-5,Hose,garden,18.75\n'
)
SUPPLIERS = "id,name\n1,Acme\n2,Globex\n"


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    with Emulator(workdir=tmp_path_factory.mktemp("functional-emulator")) as emu:
        project = emu.create_project("shop")
        emu.create_bucket(project.id, "shop")
        emu.create_table(project.id, "in.c-shop.products", PRODUCTS, primary_key=["sku"])
        emu.create_table(project.id, "in.c-shop.suppliers", SUPPLIERS)
        yield emu, project


def test_functional(shop, monkeypatch):
    emu, project = shop
    for key, value in {**emu.env, "STORAGE_SYNC_URL": emu.url, "STORAGE_SYNC_TOKEN": project.token}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KBC_RUNID", "functional")
    tester = DataDirTester(
        data_dir=str(HERE / "functional"), component_script=str(HERE.parent / "src" / "component.py")
    )
    tester.run()  # raises AssertionError naming the case and the differing files
