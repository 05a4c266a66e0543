"""A real tritonserver (the binary bundled in nvidia-pytriton) on CPU: lifecycle, failures, isolation."""
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, path_with_stand_ins, processes_with
from workflow_scripts.engines import create
from workflow_scripts.serving import model_repository, server as server_module
from workflow_scripts.serving.dynamo import DynamoServer
from workflow_scripts.serving.launchers import ApptainerLauncher, LocalLauncher, remove_stale_workdirs
from workflow_scripts.serving.server import ServerError, TritonServer, stats_window

SETTINGS = {"max_batch_size": 8, "instance_count": 1, "python_compile_mode": "none",
            "dynamic_batching": {"preferred_batch_sizes": [4, 8], "max_queue_delay_us": 100}}
LOOPBACK_HEX = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}


@pytest.fixture(scope="module")
def repository(tiny_model, tmp_path_factory):
    root, _ = tiny_model
    out = tmp_path_factory.mktemp("repo") / "python"
    model_repository.build("python", "fp32", 32, root / "model", None, "cpu", SETTINGS, out)
    return out


def group_processes(group: int) -> list[str]:
    """Live (non-zombie) processes of a process group, from the process table."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == group and fields[0] != "Z":
            found.append(f"{pid} {stat.split('(')[1].split(')')[0]}")
    return found


def wait_until_gone(check, timeout=15.0):
    deadline = time.monotonic() + timeout
    while check() and time.monotonic() < deadline:
        time.sleep(0.2)
    return check()


def listening_addresses(pids: list[int]) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp*) of the LISTEN sockets these processes hold."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A = LISTEN
                addresses.add(fields[1].split(":")[0])
    return addresses


def test_serves_over_grpc_and_http_matching_eager_loopback_only_and_stops_clean(tiny_model, repository, tmp_path):
    root, _ = tiny_model
    tokens = torch.load(root / "tokens.pt", weights_only=True)
    reference = torch.load(root / "reference.pt", weights_only=True)
    for protocol in ("grpc", "http"):
        engine = create(f"triton-python-{protocol}", model_dir=root / "model", device="cpu", precision="fp32",
                        settings={"launcher": "local", "startup_timeout_s": 120, "stop_grace_s": 10},
                        artifacts={"triton_python": repository}, result_path=tmp_path / f"{protocol}.json")
        try:
            engine.load()
            group = engine.server.process.pid
            pids = [int(p.split()[0]) for p in group_processes(group)]
            addresses = listening_addresses(pids)
            assert len(addresses) >= 1 and addresses <= LOOPBACK_HEX, addresses
            logits = engine.run(tokens["input_ids"][:5], tokens["attention_mask"][:5])
            assert torch.allclose(logits, reference[:5], atol=1e-4)
            engine.begin_window()
            engine.run(tokens["input_ids"][:1], tokens["attention_mask"][:1])
            window = engine.end_window()
            assert window["requests"] == 1 and window["compute_infer_ms"] > 0
        finally:
            engine.close()
        assert wait_until_gone(lambda: group_processes(group)) == []
        assert "--grpc-address=127.0.0.1" in (tmp_path / f"{protocol}.server.log").read_text()


def repository_with_model_py(root, repository, source: str):
    """The test repository's config with another model.py."""
    name = model_repository.model_name("python", "fp32")
    (root / name / "1").mkdir(parents=True)
    (root / name / "config.pbtxt").write_text((repository / name / "config.pbtxt").read_text())
    (root / name / "1" / "model.py").write_text(source)
    return root, name


def test_a_model_that_fails_to_load_ends_with_the_log_tail_and_no_process(tmp_path, repository):
    broken, name = repository_with_model_py(tmp_path / "broken", repository, (
        "class TritonPythonModel:\n    def initialize(self, args):\n"
        "        raise RuntimeError('weights file is corrupt')\n"))
    server = TritonServer(LocalLauncher(), broken, name, tmp_path / "server.log", startup_timeout_s=60)
    with pytest.raises(ServerError) as error:
        server.start()
    assert "exited with code" in str(error.value)
    assert "weights file is corrupt" in str(error.value)
    assert processes_with(str(broken)) == []



def test_processes_are_found_by_a_path_however_deep_the_checkout_and_its_environment_live(tmp_path):
    """Processes are looked up by paths in their command lines, whose length depends on where the checkout
    and its virtual environment live: a path past the 200th character was once cut off and not found."""
    deep = tmp_path.joinpath(*["a-folder-of-a-checkout-that-lives-deep"] * 8) / "repository"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(deep)])
    try:
        assert [line for line in processes_with("time.sleep(60)") if str(deep) in line]
    finally:
        proc.kill()
        proc.wait()

def test_readiness_timeout_is_a_clear_error_and_kills_the_server(tmp_path, repository):
    slow, name = repository_with_model_py(tmp_path / "slow", repository, (
        "import time\nclass TritonPythonModel:\n    def initialize(self, args):\n        time.sleep(600)\n"))
    server = TritonServer(LocalLauncher(), slow, name, tmp_path / "server.log", startup_timeout_s=8,
                          stop_grace_s=3)
    with pytest.raises(ServerError, match="did not report model .* READY within 8 s"):
        server.start()
    assert wait_until_gone(lambda: processes_with(str(slow))) == []


def test_a_taken_port_fails_clearly_then_a_retry_with_fresh_ports_succeeds(tmp_path, repository, monkeypatch):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    taken = holder.getsockname()[1]
    real_free_ports = server_module.free_ports
    calls = {"n": 0}

    def first_http_port_taken(count):
        calls["n"] += 1
        ports = real_free_ports(count)
        return [taken, *ports[1:]] if calls["n"] == 1 else ports

    monkeypatch.setattr(server_module, "free_ports", first_http_port_taken)
    name = model_repository.model_name("python", "fp32")
    no_retry = TritonServer(LocalLauncher(), repository, name, tmp_path / "a.log", startup_timeout_s=60)
    with pytest.raises(ServerError, match="already in use"):
        no_retry.start(attempts=1)
    assert processes_with(str(tmp_path / "a.log")) == [] and processes_with(f"--http-port={taken}") == []
    calls["n"] = 0
    with TritonServer(LocalLauncher(), repository, name, tmp_path / "b.log", startup_timeout_s=60) as retried:
        assert retried.ports["http"] != taken
        assert retried.version()
    holder.close()


CLIENT = textwrap.dedent("""
    import signal, sys, time
    # Ctrl-C must reach Python even when this test runs in a background job, which starts with SIGINT ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from workflow_scripts.serving.launchers import LocalLauncher
    from workflow_scripts.serving.server import TritonServer
    server = TritonServer(LocalLauncher(), sys.argv[1], sys.argv[2], sys.argv[3], startup_timeout_s=60)
    server.start()
    print(server.process.pid, flush=True)
    time.sleep(600)
""")


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_no_server_survives_its_client(tmp_path, repository, signum):
    """The client is killed mid-run (SIGKILL: no cleanup possible) or cancelled (SIGTERM, Ctrl-C)."""
    name = model_repository.model_name("python", "fp32")
    client = subprocess.Popen([sys.executable, "-c", CLIENT, str(repository), name, str(tmp_path / "s.log")],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        server_pid = int(client.stdout.readline())
        assert group_processes(server_pid)
        client.send_signal(signum)
        client.wait(timeout=30)
    finally:  # a client that outlived its signal must not leak into later tests
        client.kill()
    assert wait_until_gone(lambda: group_processes(server_pid)) == []


STAND_IN = REPO / "tests" / "stand_ins" / "apptainer"


def test_apptainer_launcher_with_a_stand_in_apptainer(tmp_path, tiny_model, repository, monkeypatch):
    """`apptainer` here is a STAND-IN (tests/stand_ins/apptainer): Apptainer cannot be installed on these
    machines. It records its arguments and runs tritonserver natively, so the lifecycle is real."""
    root, _ = tiny_model
    record = tmp_path / "apptainer_calls.jsonl"
    monkeypatch.setenv("PATH", path_with_stand_ins())
    monkeypatch.setenv("APPTAINER_STANDIN_LOG", str(record))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    sif = tmp_path / "tritonserver.sif"
    subprocess.run(["apptainer", "pull", str(sif), "docker://nvcr.io/nvidia/tritonserver:25.01-py3"], check=True)
    launcher = ApptainerLauncher(sif, gpu=True)
    name = model_repository.model_name("python", "fp32")
    with TritonServer(launcher, repository, name, tmp_path / "server.log", startup_timeout_s=60) as server:
        tokens = torch.load(root / "tokens.pt", weights_only=True)
        import tritonclient.grpc as grpc

        client = grpc.InferenceServerClient(server.grpc_url)
        inputs = [grpc.InferInput("input_ids", [1, 32], "INT64"), grpc.InferInput("attention_mask", [1, 32], "INT64")]
        inputs[0].set_data_from_numpy(tokens["input_ids"][:1].numpy())
        inputs[1].set_data_from_numpy(tokens["attention_mask"][:1].numpy())
        logits = client.infer(name, inputs).as_numpy("logits")
        client.close()
        ports = server.ports
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    assert calls[0] == ["pull", str(sif), "docker://nvcr.io/nvidia/tritonserver:25.01-py3"]
    exec_call = calls[1]
    assert exec_call[:5] == ["exec", "--nv", "--bind", f"{repository.resolve()}:/models:ro", str(sif)]
    assert exec_call[5] == "tritonserver"
    for flag in ("--model-repository=/models", f"--load-model={name}", "--http-address=127.0.0.1",
                 "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1", f"--http-port={ports['http']}",
                 f"--grpc-port={ports['grpc']}", f"--metrics-port={ports['metrics']}"):
        assert flag in exec_call
    assert np.allclose(logits, torch.load(root / "reference.pt", weights_only=True)[:1].numpy(), atol=1e-4)
    assert wait_until_gone(lambda: processes_with(str(repository.resolve()))) == []


def test_apptainer_launcher_without_apptainer_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RuntimeError, match="no apptainer executable is on PATH"):
        ApptainerLauncher(tmp_path / "x.sif", gpu=False)


def test_a_profiler_prefix_wraps_the_real_server(tmp_path, repository):
    """How the Nsight Systems step runs a server under `nsys launch`: here the wrapper is `env`, a real
    program that, like nsys, starts the command after it; the server must come up and serve through it."""
    launcher = LocalLauncher(profiler=["env", "INFERBENCH_PROFILED=1"])
    name = model_repository.model_name("python", "fp32")
    with TritonServer(launcher, repository, name, tmp_path / "server.log", startup_timeout_s=60) as server:
        argv = Path(tmp_path / "server.log").read_text().splitlines()[0]
        assert argv.startswith("$ env INFERBENCH_PROFILED=1 ") and "tritonserver" in argv
        environ = Path(f"/proc/{server.process.pid}/environ").read_bytes().split(b"\0")
        assert b"INFERBENCH_PROFILED=1" in environ
        assert server.get_json(f"/v2/models/{name}")["name"] == name
    launcher.cleanup()


def test_inside_apptainer_the_profiler_runs_in_the_container(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", path_with_stand_ins())  # the apptainer STAND-IN: only its presence is needed
    sif = tmp_path / "tritonserver.sif"
    sif.write_text("image")
    launcher = ApptainerLauncher(sif, gpu=True, profiler=["nsys", "launch", "--session-new=s1"])
    argv, _ = launcher.command(tmp_path, "m", {"http": 1, "grpc": 2, "metrics": 3}, "127.0.0.1")
    image = argv.index(str(sif.resolve()))
    assert argv[image + 1:image + 5] == ["nsys", "launch", "--session-new=s1", "tritonserver"]
    assert launcher.tool_command(["nsys", "start", "--session=s1"])[1:] == [
        "exec", "--nv", str(sif.resolve()), "nsys", "start", "--session=s1"]


def test_a_statistics_query_to_a_dead_server_names_its_exit(tmp_path):
    """The server can die between two requests, while the engine reads its statistics: the cell's reason must
    name the server's exit and log, not only the refused connection (seen in a fault test's run)."""
    (tmp_path / "s.log").write_text("fatal: the last words of the server\n")
    server = TritonServer(LocalLauncher(), tmp_path, "inferbench_python_fp32", tmp_path / "s.log")
    server.ports = dict(zip(("http", "grpc", "metrics"), server_module.free_ports(3)))  # nothing listens there
    server.process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    server.process.wait()
    with pytest.raises(ServerError, match=r"(?s)exited with code 3 while serving.*last words of the server"):
        server.model_stats()


@pytest.mark.parametrize("server_class", ["triton", "dynamo"])
def test_settled_statistics_wait_until_the_last_answered_request_is_counted(server_class, tmp_path, monkeypatch):
    """Both servers count a request just after answering it: the settled snapshot is the first that a second
    snapshot 50 ms later agrees with, in each server's own form of its counters."""
    from workflow_scripts.serving.dynamo import DynamoServer

    if server_class == "triton":
        server = TritonServer(LocalLauncher(), tmp_path, "model", tmp_path / "s.log")
        snapshot = lambda n: {"success": {"count": n}}
    else:
        server = DynamoServer({}, "model", tmp_path / "s.log")
        snapshot = lambda n: {"requests": n}
    counts = iter([3, 4, 5, 5, 6])  # the last answers are still being counted when the window ends
    monkeypatch.setattr(server, "model_stats", lambda: snapshot(next(counts)))
    assert server.settled_model_stats() == snapshot(5)


def test_free_ports_are_distinct_even_when_the_system_hands_a_closed_port_out_again(monkeypatch):
    """The fault seen in a test run: one port chosen for both gRPC and metrics. Here the system gives every
    bind the lowest port not open at that moment, so a port closed before the next choice would come back."""
    open_ports = set()

    class LowestFreePortSocket:
        def __init__(self, *args):
            self.port = None

        def bind(self, address):
            self.port = min(set(range(50000, 50010)) - open_ports)
            open_ports.add(self.port)

        def getsockname(self):
            return ("127.0.0.1", self.port)

        def close(self):
            open_ports.discard(self.port)

    monkeypatch.setattr(server_module.socket, "socket", LowestFreePortSocket)
    assert server_module.free_ports(3) == [50000, 50001, 50002]
    assert open_ports == set()  # none is kept from the server


def test_client_processes_never_outnumber_the_clients(monkeypatch):
    from workflow_scripts.serving.load_clients import planned_processes

    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(16)))  # the job's cores, not the machine's
    assert [planned_processes("auto", n) for n in (1, 4, 16, 64)] == [1, 4, 8, 8]
    assert planned_processes(3, 64) == 3 and planned_processes(3, 2) == 2


class _ExitsWhenUnpickled:
    """Arguments that end a spawned process while it starts, as a crash would."""

    def __reduce__(self):
        return (os._exit, (3,))


def test_a_load_client_process_that_dies_fails_its_level_at_once():
    from workflow_scripts.serving.load_clients import LoadClientDied, closed_loop

    target = {"protocol": "grpc", "url": "127.0.0.1:1", "model_name": "m", "output": "logits"}
    mask = np.ones((4, 8), dtype=np.int64)
    started = time.monotonic()
    with pytest.raises(LoadClientDied, match=r"exited with code 3 while connecting \(0 of 2"):
        closed_loop(target, _ExitsWhenUnpickled(), mask, concurrency=2, seconds=1.0, warmup_seconds=0.1, processes=2)
    assert time.monotonic() - started < 30  # not the 120 s allowed for connecting


def test_a_level_whose_clients_died_is_failed_and_the_next_level_still_runs(monkeypatch, tmp_path):
    """The load step around the load generator: the dead level gets a valid `failed` result naming the cause."""
    from workflow_scripts import load_sweep
    from workflow_scripts.serving.load_clients import LoadClientDied

    stats = {"success": {"count": 0, "ns": 0}, "execution_count": 0, "inference_count": 0,
             **{phase: {"ns": 0} for phase in ("queue", "compute_input", "compute_infer", "compute_output")}}

    class Engine:  # a served engine, as far as the load step's Python client uses it
        perf_analyzer_cannot_drive = None
        load = close = begin_window = run = lambda self, *args: None
        end_window = lambda self: stats_window(stats, stats)
        request_target = lambda self: {}

    def load_generator(target, ids, mask, concurrency, *rest):
        if concurrency == 4:
            raise LoadClientDied("load client process 7 exited with code 3 while measuring (1 of 2 processes had reported)")
        return [1.0, 1.2, 1.1], 0

    monkeypatch.setattr(load_sweep, "create", lambda *a, **k: Engine())
    monkeypatch.setattr(load_sweep, "closed_loop", load_generator)
    monkeypatch.setattr(load_sweep, "load_info", lambda model_dir: {"model_id": "tiny", "weights": "random"})
    monkeypatch.setattr(load_sweep, "load_tokens", lambda path: {"input_ids": torch.ones(4, 8, dtype=torch.int64),
                                                                 "attention_mask": torch.ones(4, 8, dtype=torch.int64)})
    cell = {"engine": "triton-python-grpc", "precision": "fp32", "seq_len": 8, "padding": "max_length", "device": "cpu"}
    outs = [str(tmp_path / f"c{n}.json") for n in (1, 4, 16)]
    load_sweep.sweep(cell, "model", "tokens.pt", {}, {}, {"concurrency": [1, 4, 16], "seconds": 1.0,
                                                         "warmup_seconds": 0.1, "client_processes": 2}, outs)
    results = [json.loads(Path(out).read_text()) for out in outs]
    assert [r["status"] for r in results] == ["ok", "failed", "ok"]
    assert results[1]["reason"].startswith("LoadClientDied: load client process 7 exited with code 3")


def test_backend_folders_of_killed_jobs_are_removed_by_the_next_server_start(tmp_path):
    """A job killed with SIGKILL cannot remove its /tmp/inferbench-triton-<pid>-* folder; the next start does."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"inferbench-triton-{dead.pid}-abc"
    live = tmp_path / f"inferbench-triton-{os.getpid()}-def"
    for folder in (stale, live):
        (folder / "backends" / "python").mkdir(parents=True)
    assert remove_stale_workdirs(tmp_path) == [stale]
    assert not stale.exists() and live.exists()


class _FakeBackendUtils:
    """The parts of Triton's `triton_python_backend_utils` that model.py uses, for running it in this process."""

    class Tensor:
        def __init__(self, name, tensor):
            self.name, self.tensor = name, tensor

        def to_dlpack(self):
            return torch.utils.dlpack.to_dlpack(self.tensor)

        @classmethod
        def from_dlpack(cls, name, capsule):
            return cls(name, torch.utils.dlpack.from_dlpack(capsule).clone())  # the stub copies it out too

    class InferenceResponse:
        def __init__(self, output_tensors):
            self.output_tensors = output_tensors

    @staticmethod
    def get_input_tensor_by_name(request, name):
        return request[name]


def test_python_backend_model_pads_batches_to_buckets_in_static_inputs(tiny_model, repository, monkeypatch):
    """model.py in this process (the backend utilities faked, torch.compile the identity so that its batch
    buckets exist on CPU): batches of every size, padded up to a bucket in the static input buffer that earlier
    batches left rows in, give the eager logits of exactly their own rows."""
    import importlib.util

    root, _ = tiny_model
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", _FakeBackendUtils)
    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: model)
    name = model_repository.model_name("python", "fp32")
    spec = importlib.util.spec_from_file_location("backend_model", repository / name / "1" / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = {"max_batch_size": 8, "input": [{"dims": [32]}], "dynamic_batching": {"preferred_batch_size": [4, 8]},
              "parameters": {"precision": {"string_value": "fp32"}, "device": {"string_value": "cpu"},
                             "compile_mode": {"string_value": "default"}}}
    model = module.TritonPythonModel()
    model.initialize({"model_config": json.dumps(config), "model_instance_kind": "CPU", "model_instance_device_id": "0",
                      "model_repository": str(repository / name), "model_version": "1"})
    assert model.buckets == [1, 4, 8]
    tokens = torch.load(root / "tokens.pt", weights_only=True)
    reference = torch.load(root / "reference.pt", weights_only=True)
    start = 0
    for sizes in ([3, 2, 3], [1], [2, 1], [5]):  # 8 rows, 1, 3 padded to 4, 5 padded to 8 after a full batch
        requests = [{key: _FakeBackendUtils.Tensor(key, tokens[key][start + sum(sizes[:i]):start + sum(sizes[:i + 1])])
                     for key in ("input_ids", "attention_mask")} for i in range(len(sizes))]
        responses = model.execute(requests)
        logits = torch.cat([r.output_tensors[0].tensor for r in responses])
        assert [len(r.output_tensors[0].tensor) for r in responses] == sizes
        assert torch.allclose(logits, reference[start:start + sum(sizes)], atol=1e-4)
        start += sum(sizes)


def _triton_counts(requests: int) -> dict:
    return {"success": {"count": requests, "ns": requests * 10**6}, "execution_count": requests,
            "inference_count": requests, **{p: {"ns": requests * 10**5} for p in
                                            ("queue", "compute_input", "compute_infer", "compute_output")}}


def _dynamo_counts(requests: int) -> dict:
    return {"requests": requests, "rows": requests, "input_ns": requests * 10**5, "infer_ns": requests * 10**6,
            "output_ns": requests * 10**5}


@pytest.mark.parametrize("engine_name, server_class, counts", [("triton-python-grpc", TritonServer, _triton_counts),
                                                               ("dynamo-grpc", DynamoServer, _dynamo_counts)])
def test_the_statistics_window_opens_on_settled_counters(engine_name, server_class, counts):
    """A server counts a request just after replying: the first snapshot after the warm-up can miss the last
    warm-up reply. Every served engine waits for the counters to settle before opening the window, so a window
    with no timed request counts none (an unsettled snapshot counted that warm-up reply as timed)."""
    from workflow_scripts.engines import engine_class

    class LateCounting(server_class):
        def __init__(self):
            self.reads = iter([5, 6])  # the 6th (last warm-up) reply is counted after the first read

        def model_stats(self):
            return counts(next(self.reads, 6))

    engine = object.__new__(engine_class(engine_name))
    engine.server = LateCounting()
    engine.begin_window()
    assert engine.end_window()["requests"] == 0
