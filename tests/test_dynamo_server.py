"""NVIDIA Dynamo (the optional extra `dynamo`) on CPU: its real KServe gRPC frontend and a worker running the
tiny model, driven through the engine interface: answers matching eager, loopback only, nothing left behind."""
import importlib.util
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import REPO
from test_triton_server import LOOPBACK_HEX, group_processes, listening_addresses, wait_until_gone
from workflow_scripts.engines import create
from workflow_scripts.engines.base import EngineUnavailable
from workflow_scripts.engines.dynamo import DynamoEngine
from workflow_scripts.serving import dynamo
from workflow_scripts.serving.server import ServerError

needs_dynamo = pytest.mark.skipif(importlib.util.find_spec("dynamo") is None,
                                  reason="NVIDIA Dynamo is not installed (the optional extra `dynamo`)")
SETTINGS = {"worker_engine": "eager", "worker_settings": {}, "startup_timeout_s": 180, "stop_grace_s": 10}


def server_pids(server) -> list[int]:
    """Every live process of the server: the frontend's and the worker's process groups."""
    groups = [server.process.pid, *(process.pid for _, process in server.companions)]
    return [int(line.split()[0]) for group in groups for line in group_processes(group)]


@needs_dynamo
def test_serves_matching_eager_loopback_only_and_stops_clean(tiny_model, tmp_path):
    root, _ = tiny_model
    tokens = torch.load(root / "tokens.pt", weights_only=True)
    reference = torch.load(root / "reference.pt", weights_only=True)
    engine = create("dynamo-grpc", model_dir=root / "model", device="cpu", precision="fp32", settings=SETTINGS,
                    result_path=tmp_path / "cell.json")
    try:
        engine.load()
        groups = [engine.server.process.pid, *(process.pid for _, process in engine.server.companions)]
        assert len(groups) == 2  # frontend and worker
        addresses = listening_addresses(server_pids(engine.server))
        # the frontend's gRPC and metrics ports, its response stream and the worker's request plane
        assert len(addresses) >= 1 and addresses <= LOOPBACK_HEX, addresses
        logits = engine.run(tokens["input_ids"][:5], tokens["attention_mask"][:5])
        assert torch.allclose(logits, reference[:5], atol=1e-4)
        engine.begin_window()
        for _ in range(3):
            engine.run(tokens["input_ids"][:2], tokens["attention_mask"][:2])
        window = engine.end_window()
        assert window["requests"] == 3 and window["mean_batch_per_execution"] == 2
        assert window["compute_infer_ms"] > 0 and window["compute_input_ms"] > 0
    finally:
        engine.close()
    assert all(wait_until_gone(lambda: group_processes(group)) == [] for group in groups)
    log = (tmp_path / "cell.server.log").read_text()
    assert "--kserve-grpc-server" in log and "dynamo_worker" in log


def test_the_loopback_library_turns_a_wildcard_bind_into_loopback(tmp_path):
    """The preloaded library alone: a process that binds 0.0.0.0 and :: listens on loopback instead."""
    library = dynamo.build_loopback_shim(tmp_path)
    program = textwrap.dedent("""
        import socket
        v4 = socket.socket(socket.AF_INET); v4.bind(("0.0.0.0", 0))
        v6 = socket.socket(socket.AF_INET6); v6.bind(("::", 0))
        named = socket.socket(socket.AF_INET); named.bind(("127.0.0.1", 0))
        print(v4.getsockname()[0], v6.getsockname()[0], named.getsockname()[0])
    """)
    plain = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert plain.stdout.split() == ["0.0.0.0", "::", "127.0.0.1"]
    shimmed = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True,
                             env={"LD_PRELOAD": str(library), "PATH": "/usr/bin:/bin"})
    assert shimmed.stdout.split() == ["127.0.0.1", "::1", "127.0.0.1"]


def test_without_dynamo_its_cells_are_skipped_with_the_reason(tiny_model, monkeypatch):
    root, _ = tiny_model
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.split(".")[0] == "dynamo" else real_find_spec(name, *a))
    with pytest.raises(EngineUnavailable, match="NVIDIA Dynamo is not installed"):
        create("dynamo-grpc", model_dir=root / "model", device="cpu", precision="fp32", settings=SETTINGS)


@needs_dynamo
def test_what_the_worker_engine_cannot_run_is_skipped(tiny_model):
    root, _ = tiny_model
    with pytest.raises(EngineUnavailable, match="worker engine eager: fp16 matmuls are not supported on CPU"):
        create("dynamo-grpc", model_dir=root / "model", device="cpu", precision="fp16", settings=SETTINGS)


@needs_dynamo
def test_a_worker_that_cannot_load_ends_with_the_log_tail_and_no_process(tmp_path):
    worker = {"engine": "eager", "settings": {}, "model_dir": str(tmp_path / "no_such_model"), "device": "cpu",
              "precision": "fp32", "num_labels": 2}
    server = dynamo.DynamoServer(worker, "inferbench_fp32", tmp_path / "s.log", startup_timeout_s=120,
                                 stop_grace_s=5)
    with pytest.raises(ServerError, match=r"(?s)dynamo worker exited with code 1 before it was ready.*no_such_model"):
        server.start()
    assert server.process is None and server.workdir is None


CLIENT = textwrap.dedent("""
    import sys, time
    from workflow_scripts.serving.dynamo import DynamoServer
    worker = {"engine": "eager", "settings": {}, "model_dir": sys.argv[1], "device": "cpu", "precision": "fp32",
              "num_labels": 2}
    server = DynamoServer(worker, "inferbench_fp32", sys.argv[2], startup_timeout_s=180)
    server.start()
    print(server.workdir, server.process.pid, *(p.pid for _, p in server.companions), flush=True)
    time.sleep(600)
""")


@needs_dynamo
def test_no_dynamo_process_survives_a_killed_job(tiny_model, tmp_path):
    """The job is killed with SIGKILL (no cleanup possible): the kernel's parent-death signal stops both, and
    the next Dynamo start removes the folder the killed job left."""
    root, _ = tiny_model
    client = subprocess.Popen([sys.executable, "-c", CLIENT, str(root / "model"), str(tmp_path / "s.log")],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        workdir, *pids = client.stdout.readline().split()
        groups = [int(pid) for pid in pids]
        assert len(groups) == 2 and all(group_processes(group) for group in groups)
        client.send_signal(signal.SIGKILL)
        client.wait(timeout=30)
    finally:
        client.kill()
    assert all(wait_until_gone(lambda: group_processes(group)) == [] for group in groups)
    assert Path(workdir).is_dir()  # nobody could clean up
    assert Path(workdir) in dynamo.remove_stale_workdirs(prefix=dynamo.WORKDIR_PREFIX)
    assert not Path(workdir).exists()


def test_the_load_step_drives_dynamo_with_the_python_client_and_says_why(monkeypatch, tmp_path):
    """perf_analyzer needs Triton's statistics API, which Dynamo's frontend lacks: whatever triton.load.client
    asks for, Dynamo's levels use the Python client, and each result says why (the engine is stood in)."""
    import json

    from workflow_scripts import load_sweep

    class StandIn:
        perf_analyzer_cannot_drive = DynamoEngine.perf_analyzer_cannot_drive
        load = close = begin_window = run = lambda self, *args: None
        end_window = lambda self: {"requests": 3}
        request_target = lambda self: {}

    monkeypatch.setattr(load_sweep, "create", lambda *a, **k: StandIn())
    monkeypatch.setattr(load_sweep, "closed_loop", lambda *a: ([1.0, 1.2, 1.1], 0))
    monkeypatch.setattr(load_sweep, "load_info", lambda model_dir: {"model_id": "tiny", "weights": "random"})
    monkeypatch.setattr(load_sweep, "load_tokens", lambda path: {"input_ids": torch.ones(4, 8, dtype=torch.int64),
                                                                 "attention_mask": torch.ones(4, 8, dtype=torch.int64)})
    cell = {"engine": "dynamo-grpc", "precision": "fp32", "seq_len": 8, "padding": "max_length", "device": "cpu"}
    out = tmp_path / "c1.json"
    load_sweep.sweep(cell, "model", "tokens.pt", {}, {}, {"concurrency": [1], "seconds": 1.0, "warmup_seconds": 0.1,
                                                          "client_processes": 1, "client": "perf_analyzer"}, [str(out)])
    result = json.loads(out.read_text())
    assert result["status"] == "ok" and result["load_client"]["name"] == "python"
    assert "statistics API" in result["load_client"]["perf_analyzer_unusable"]


def test_under_a_profiler_the_worker_runs_inside_it_on_loopback(tmp_path):
    """The Nsight Systems step wraps the process that does the GPU work: Dynamo's worker, not the frontend."""
    worker = {"engine": "eager", "settings": {}, "model_dir": str(tmp_path), "device": "cuda", "precision": "bf16",
              "num_labels": 2, "profiler": ["nsys", "launch", "--session-new=s1"]}
    server = dynamo.DynamoServer(worker, "inferbench_bf16", tmp_path / "s.log")
    server.ports = {"grpc": 1, "metrics": 2}
    try:
        (frontend, frontend_argv, env), (name, worker_argv, _) = server.commands()
    finally:
        server.stop()
    assert name == "dynamo worker" and worker_argv[:3] == ["nsys", "launch", "--session-new=s1"]
    assert worker_argv[3:6] == [sys.executable, "-m", "workflow_scripts.serving.dynamo_worker"]
    assert "nsys" not in frontend_argv and "--kserve-grpc-server" in frontend_argv
    assert env["DYN_TCP_RPC_HOST"] == env["DYN_TCP_RESPONSE_STREAM_HOST"] == "127.0.0.1"
    assert env["LD_PRELOAD"].split()[0].endswith("loopback_bind.so")
