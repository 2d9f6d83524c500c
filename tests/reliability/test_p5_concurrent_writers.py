"""Part 5: a writer keeps inserting and updating source rows (the emulator's incremental loads: the same engine
path as an import job) while sync runs alternate with it. After a final sync the destination equals the source,
row for row; once on one stack, once across two stacks (two emulators sharing the S3 endpoint, own buckets).
"""

from __future__ import annotations

import random
import threading

import pytest

from emulator import Emulator
from tests.reliability.conftest import CAMPAIGN, RUNS, env_for, new_data_dir, new_project, rows, sync_params, variants

PK_TABLE, APPEND_TABLE = "in.c-live.items", "in.c-live.log"


class Writer(threading.Thread):
    def __init__(self, emu, project, seed):
        super().__init__(daemon=True)
        self.emu, self.project, self.rng = emu, project, random.Random(seed)
        self.stop = threading.Event()
        self.next_id = 100
        self.writes = 0
        self.error: BaseException | None = None

    def run(self):
        try:
            while not self.stop.is_set():
                updates = [self.rng.randrange(self.next_id) for _ in range(5)]
                new = list(range(self.next_id, self.next_id + 5))
                self.next_id += 5
                body = "".join(f"{i},v{self.writes}-{i}\n" for i in updates + new)
                self.emu.load_table(self.project.id, PK_TABLE, "id,v\n" + body, incremental=True)
                self.emu.load_table(self.project.id, APPEND_TABLE, f"n\n{self.writes}\n", incremental=True)
                self.writes += 1
                self.stop.wait(0.05)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def _campaign(src_emu, dst_emu, tmp_path, runs, seed, part):
    source = new_project(src_emu, "livesrc")
    destination = new_project(dst_emu, "livedst")
    src_emu.create_bucket(source.id, "live")
    src_emu.create_table(source.id, PK_TABLE, "id,v\n" + "".join(f"{i},v{i}\n" for i in range(100)), ["id"])
    src_emu.create_table(source.id, APPEND_TABLE, "n\nstart\n")
    data = new_data_dir(tmp_path / "data")
    data.write_config(sync_params(src_emu, source, dst_emu, destination, [{"source": "in.c-live"}]))
    env = env_for(src_emu)
    writer = Writer(src_emu, source, seed)
    writer.start()
    try:
        for _ in range(runs):
            run = data.run(env)
            assert run.returncode == 0, run.output
            data.carry_state()
    finally:
        writer.stop.set()
        writer.join()
    assert writer.error is None, writer.error
    final = data.run(env)
    assert final.returncode == 0, final.output
    compared = 0
    for table in (PK_TABLE, APPEND_TABLE):
        expected = rows(src_emu, source, table)
        assert rows(dst_emu, destination, table) == expected, f"{table} differs after the final sync"
        compared += len(expected)
    CAMPAIGN.add(part, runs=runs + 1, source_writes=writer.writes, rows_compared=compared)


@pytest.mark.parametrize("runs", variants(3, max(5, RUNS // 2)))
def test_sync_alternating_with_writer_same_stack(emu, tmp_path, runs):
    _campaign(emu, emu, tmp_path, runs, seed=runs, part="5 concurrent writer / same stack")


@pytest.mark.parametrize("runs", variants(2, max(5, RUNS // 2)))
def test_sync_alternating_with_writer_cross_stack(emu, tmp_path, runs):
    with Emulator(workdir=tmp_path / "second-stack", share_storage_with=emu) as other:
        _campaign(emu, other, tmp_path, runs, seed=1000 + runs, part="5 concurrent writer / cross stack")
