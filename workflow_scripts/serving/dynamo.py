"""NVIDIA Dynamo's life inside one job: its KServe gRPC frontend and one worker running inferbench's engine.

Two processes, both started and stopped by the lifecycle of serving/server.py (free loopback ports, readiness
wait with a timeout, SIGTERM then SIGKILL, log beside the result, nothing outliving the job):
- `python -m dynamo.frontend --kserve-grpc-server --discovery-backend file`: the KServe v2 gRPC endpoint that
  `tritonclient.grpc` talks to, on ports["grpc"] (its Prometheus metrics on ports["metrics"]);
- `python -m workflow_scripts.serving.dynamo_worker`: the model (serving/dynamo_worker.py).
They find each other through a discovery folder private to this server (no etcd, no NATS) and talk over
Dynamo's TCP request plane on loopback.

Loopback only: the frontend binds its gRPC and metrics ports to 0.0.0.0 whatever host it is given (ai-dynamo
1.6: no setting exists), so both processes run with a tiny preloaded library (loopback_bind.c, compiled here
with the C compiler `CC` or `cc`, which torch.compile needs too) that turns a bind to the wildcard address into
a bind to loopback. The worker's own listeners are put on loopback by Dynamo's settings as well.
"""
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from workflow_scripts.serving.dynamo_worker import COUNTERS, counters
from workflow_scripts.serving.launchers import remove_stale_workdirs
from workflow_scripts.serving.server import LOOPBACK, ManagedServer, ServerError

SHIM_SOURCE = Path(__file__).resolve().parent / "loopback_bind.c"
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding workflow_scripts/
# The server's own folder (discovery, loopback library, counters): /tmp/inferbench-dynamo-<pid of the job>-<random>
WORKDIR_PREFIX = "inferbench-dynamo-"


def missing_reason() -> str | None:
    """Why Dynamo cannot be served here (not installed, no C compiler), or None."""
    if importlib.util.find_spec("dynamo") is None or importlib.util.find_spec("dynamo.frontend") is None:
        return ("NVIDIA Dynamo is not installed: install the optional extra with `bash setup.sh --dynamo` "
                "(README: Serving with NVIDIA Dynamo)")
    if shutil.which(os.environ.get("CC", "cc")) is None:
        return (f"no C compiler ({os.environ.get('CC', 'cc')}) to build the library that keeps Dynamo's "
                "listeners on loopback: install one (e.g. apt-get install gcc) or name it in CC")
    return None


def dynamo_version() -> str:
    """The installed ai-dynamo package's version, or "unknown"."""
    try:
        return importlib.metadata.version("ai-dynamo")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def build_loopback_shim(folder: Path) -> Path:
    """Compile loopback_bind.c into folder; returns the shared library's path."""
    compiler = os.environ.get("CC", "cc")
    library = folder / "loopback_bind.so"
    command = [compiler, "-shared", "-fPIC", "-O2", "-o", str(library), str(SHIM_SOURCE), "-ldl"]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)
    except FileNotFoundError as error:
        raise ServerError(f"no C compiler {compiler!r} to build {SHIM_SOURCE.name}, which keeps Dynamo's "
                          "listeners on loopback") from error
    except subprocess.CalledProcessError as error:
        raise ServerError(f"building {SHIM_SOURCE.name} failed: {' '.join(command)}\n{error.stderr}") from error
    return library


class DynamoServer(ManagedServer):
    """`with DynamoServer(worker, model_name, log_path) as server: ...`; requests go to `server.grpc_url`.

    worker: engine (an in-process engine's name), settings (its settings), model_dir, device, precision,
    num_labels, and optionally profiler (a command prefix the worker runs under, e.g. `nsys launch ...`).
    """

    program = "dynamo frontend"
    port_names = ("grpc", "metrics")
    timeout_setting = "dynamo.startup_timeout_s"

    def __init__(self, worker: dict, model_name: str, log_path: str | Path, startup_timeout_s: float = 300.0,
                 stop_grace_s: float = 10.0):
        super().__init__(log_path, startup_timeout_s, stop_grace_s)
        self.worker = worker
        self.model_name = model_name
        self.workdir: Path | None = None
        self.client = None

    @property
    def grpc_url(self) -> str:
        """host:port of the frontend's KServe gRPC server (loopback)."""
        return f"{LOOPBACK}:{self.ports['grpc']}"

    def commands(self) -> list[tuple[str, list[str], dict]]:
        """The frontend and the worker (serving/dynamo_worker.py), each bound to loopback through the
        LD_PRELOAD shim, sharing a fresh file-discovery folder and namespace."""
        self._remove_workdir()  # a retry after a port collision starts from a clean discovery folder
        remove_stale_workdirs(prefix=WORKDIR_PREFIX)  # those of killed jobs
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-"))
        namespace = "inferbench-" + self.workdir.name.rsplit("-", 1)[-1].lower().replace("_", "-")
        env = os.environ.copy()
        env.update({
            "LD_PRELOAD": " ".join(filter(None, [str(build_loopback_shim(self.workdir)), env.get("LD_PRELOAD")])),
            "DYN_FILE_KV": str(self.workdir / "discovery"),  # this server's own: jobs side by side never meet
            "DYN_TCP_RPC_HOST": LOOPBACK, "DYN_TCP_RESPONSE_STREAM_HOST": LOOPBACK,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")])),
        })
        env.pop("DYN_SYSTEM_PORT", None)  # no status server in the worker
        worker = self.worker
        worker_argv = [*worker.get("profiler", []), sys.executable, "-m", "workflow_scripts.serving.dynamo_worker",
                       "--engine", worker["engine"],
                       "--settings", json.dumps(worker.get("settings") or {}, sort_keys=True),
                       "--model-dir", str(Path(worker["model_dir"]).resolve()), "--device", worker["device"],
                       "--precision", worker["precision"],
                       "--num-labels", str(worker["num_labels"]), "--model-name", self.model_name,
                       "--namespace", namespace, "--counters", str(self.counter_path)]
        frontend_argv = [sys.executable, "-m", "dynamo.frontend", "--kserve-grpc-server",
                         "--discovery-backend", "file", "--request-plane", "tcp", "--namespace", namespace,
                         "--http-host", LOOPBACK, "--http-port", str(self.ports["grpc"]),
                         "--grpc-metrics-port", str(self.ports["metrics"])]
        return [("dynamo frontend", frontend_argv, env), ("dynamo worker", worker_argv, env)]

    @property
    def counter_path(self) -> Path:
        """The worker's counter file (COUNTERS as int64, rewritten after each request)."""
        return self.workdir / "worker_counters.bin"

    def ready(self) -> bool:
        """Whether the frontend answers and reports the model ready over gRPC."""
        import tritonclient.grpc

        try:
            if self.client is None:
                self.client = tritonclient.grpc.InferenceServerClient(url=self.grpc_url)
            return bool(self.client.is_model_ready(self.model_name, client_timeout=2))
        except Exception:  # not listening yet, or the model not registered yet
            return False

    def not_ready_error(self) -> str:
        """The error when the model is not ready within dynamo.startup_timeout_s."""
        return (f"Dynamo's frontend did not report model {self.model_name!r} ready within "
                f"{self.startup_timeout_s:.0f} s (dynamo.startup_timeout_s).")

    def model_stats(self) -> dict:
        """The worker's cumulative counters (serving/dynamo_worker.py: requests, rows, input/infer/output ns)."""
        if self.workdir is None or not self.counter_path.exists():
            return dict.fromkeys(COUNTERS, 0)  # not written yet: no request so far
        return counters(self.counter_path)

    @staticmethod
    def answered_requests(stats: dict) -> int:
        """The worker's request count of a model_stats() snapshot."""
        return stats["requests"]

    @staticmethod
    def window_stats(before: dict, after: dict) -> dict:
        """The worker's per-request breakdown between two snapshots (serving.dynamo.stats_window)."""
        return stats_window(before, after)

    def stop(self) -> None:
        """Close the client, stop the processes (ManagedServer.stop) and remove the discovery folder."""
        if self.client is not None:
            self.client.close()
            self.client = None
        try:
            super().stop()
        finally:
            self._remove_workdir()

    def _remove_workdir(self) -> None:
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


def stats_window(before: dict, after: dict) -> dict:
    """Per-request worker-side time (ms) between two `model_stats()` snapshots, named like Triton's breakdown:
    compute input (lists to device tensors), compute infer (the forward), compute output (logits to lists).
    Dynamo batches nothing: one execution per request."""
    requests = after["requests"] - before["requests"]
    if requests <= 0:
        return {"requests": 0}
    per_request = {f"compute_{phase}_ms": (after[f"{phase}_ns"] - before[f"{phase}_ns"]) / requests / 1e6
                   for phase in ("input", "infer", "output")}
    return {"requests": requests, "executions": requests,
            "mean_batch_per_execution": (after["rows"] - before["rows"]) / requests,
            "server_total_ms": sum(per_request.values()), **per_request}

