"""Each local model job gets a card of its own and a share of the cores near it (workflow_scripts/placement.py)."""
import json
import os
import sys

import pytest

from workflow_scripts import placement
from workflow_scripts.placement import PlacementError, compact_cores, place_job, plan

# two cards of one host, each near one half of 32 cores (as NVML reports a two-socket machine)
TWO_SOCKETS = [{"id": "GPU-aaaa", "name": "H200", "cpus": list(range(0, 16))},
               {"id": "GPU-bbbb", "name": "H200", "cpus": list(range(16, 32))}]


def test_each_card_gets_an_equal_share_of_its_own_numa_node_and_cpu_only_jobs_the_rest():
    placed = plan(32, None, "cuda", "run", cards=TWO_SOCKETS, available=range(32))
    first, second = placed["slots"]
    assert (first["device"], second["device"]) == ("GPU-aaaa", "GPU-bbbb")
    assert placed["threads_per_slot"] == 15
    assert set(first["cores"]) <= set(range(16)) and set(second["cores"]) <= set(range(16, 32))
    assert len(first["cores"]) == len(second["cores"]) == 15
    taken = set(first["cores"]) | set(second["cores"])
    assert placed["cpu_only_cores"] and not taken & set(placed["cpu_only_cores"])
    assert first["lock"] != second["lock"]


def test_a_node_with_more_than_64_cores_gives_its_one_card_all_but_one_core():
    # the old 64-thread cap let two timing jobs share one card on such a node
    placed = plan(128, None, "cuda", "run", cards=TWO_SOCKETS[:1], available=range(128))
    assert placed["threads_per_slot"] == 127 and len(placed["slots"]) == 1
    assert placed["cpu_only_cores"] == [127]


def test_only_the_cores_snakemake_was_given_are_shared_out():
    placed = plan(8, None, "cuda", "run", cards=TWO_SOCKETS, available=range(32))
    assert placed["threads_per_slot"] == 3
    used = [core for slot in placed["slots"] for core in slot["cores"]] + placed["cpu_only_cores"]
    assert len(used) == len(set(used)) == 8


def test_a_gpu_count_override_makes_stand_in_cards_where_there_is_no_gpu():
    placed = plan(2, 2, "cpu", "run", cards=[], available=[0, 1])
    assert [slot["device"] for slot in placed["slots"]] == ["0", "1"]
    assert [slot["cores"] for slot in placed["slots"]] == [[0], [1]]
    assert placed["threads_per_slot"] == 1 and placed["cpu_only_cores"] == []


def test_no_placement_on_cpu_or_with_no_gpu():
    assert plan(16, None, "cpu", "run", cards=TWO_SOCKETS, available=range(16)) is None
    assert plan(16, None, "cuda", "run", cards=[], available=range(16)) is None
    assert plan(16, 0, "cuda", "run", cards=TWO_SOCKETS, available=range(16)) is None


def test_asking_for_more_gpus_than_the_node_has_is_an_error_naming_both():
    with pytest.raises(PlacementError, match=r"gpu=3, but this node has 2 GPU"):
        plan(32, 3, "cuda", "run", cards=TWO_SOCKETS, available=range(32))


def test_concurrent_jobs_lease_different_cards_and_run_on_their_cores(tmp_path, monkeypatch):
    placed = plan(2, 2, "cpu", "run", cards=[], available=sorted(os.sched_getaffinity(0))[:2])
    for slot in placed["slots"]:
        slot["lock"] = str(tmp_path / f"{slot['device']}.lock")
    monkeypatch.setenv(placement.PLAN_VARIABLE, json.dumps(placed))
    monkeypatch.setattr(placement, "_held_slot_files", [])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)  # restored after the test
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    before = os.sched_getaffinity(0)
    try:
        first = place_job(1)
        assert os.environ["CUDA_VISIBLE_DEVICES"] == first["device"]
        assert os.sched_getaffinity(0) == set(first["cores"])
        # the first lease is held (flock conflicts between open files even within one process)
        second = place_job(1)
        assert second["device"] != first["device"]
        assert os.environ["CUDA_VISIBLE_DEVICES"] == second["device"]
    finally:
        os.sched_setaffinity(0, before)
        for handle in placement._held_slot_files:
            handle.close()


def test_without_a_plan_a_job_is_left_alone(monkeypatch):
    monkeypatch.delenv(placement.PLAN_VARIABLE, raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert place_job(1) is None
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_compact_cores():
    assert compact_cores([5, 0, 1, 2, 7, 8]) == "0-2,5,7-8"
    assert compact_cores([]) == ""


def test_a_job_that_initialised_cuda_before_it_was_placed_is_stopped(monkeypatch):
    placed = plan(2, 2, "cpu", "run", cards=[], available=[0, 1])
    monkeypatch.setenv(placement.PLAN_VARIABLE, json.dumps(placed))
    started = type("Cuda", (), {"is_initialized": staticmethod(lambda: True)})
    monkeypatch.setitem(sys.modules, "torch", type("Torch", (), {"cuda": started}))
    with pytest.raises(PlacementError, match="CUDA was initialised before"):
        place_job(1)
