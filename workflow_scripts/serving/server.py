"""A server's life inside one job: free loopback ports, start, wait until the model is ready, and a stop that
leaves no process behind (SIGTERM, then SIGKILL after a grace period). `ManagedServer` is that lifecycle for
any server made of one or more processes; `TritonServer` adds Triton's readiness and statistics (the Dynamo
server is in serving/dynamo.py).

Each process runs in its own process group, and the kernel sends it SIGTERM if this process dies first
(PR_SET_PDEATHSIG), so a client killed with SIGKILL does not leave an orphaned server either.
"""
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

log = logging.getLogger("serving.server")
PR_SET_PDEATHSIG = 1
LOOPBACK = "127.0.0.1"
EXIT_SETTLE_S = 2.0  # how long a failed request waits to learn whether the server died


class ServerError(RuntimeError):
    """The server did not start, did not become ready, or died; the message carries its log's tail."""
    pass


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports. All are held open while choosing: a port closed before the next is chosen
    can be handed out again (seen: gRPC and metrics given the same port, and the server refused to start)."""
    sockets = []
    try:
        for _ in range(count):
            sockets.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sockets[-1].bind((LOOPBACK, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _terminate_on_sigterm() -> None:
    """Turn SIGTERM (Snakemake cancelling a job, Slurm's time limit) into SystemExit, so `finally` stops the server."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        try:
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
        except ValueError:  # not the main thread: leave it to the parent-death signal
            pass


class ManagedServer:
    """Context manager owning a server's processes: `with Server(...) as server: ...`.

    Subclasses name their ports (`port_names`, chosen free on loopback before each start), the processes to
    start (`commands()`), and what "ready" means (`ready()`); messages name the server as `program`.
    `process` is the first process (the server itself, or the one that must start first).
    """

    program = "server"
    port_names: tuple[str, ...] = ()
    timeout_setting = "startup_timeout_s"  # the config key that sets startup_timeout_s, named in the timeout error

    def __init__(self, log_path: str | Path, startup_timeout_s: float = 120.0, stop_grace_s: float = 10.0):
        self.log_path = Path(log_path)
        self.startup_timeout_s = startup_timeout_s
        self.stop_grace_s = stop_grace_s
        self.process: subprocess.Popen | None = None
        self.companions: list[tuple[str, subprocess.Popen]] = []  # further processes, with their names
        self.ports: dict[str, int] = {}

    def commands(self) -> list[tuple[str, list[str], dict]]:
        """(name, argv, environment) of each process, started in this order."""
        raise NotImplementedError

    def ready(self) -> bool:
        """Whether the server answers and its model is ready; called every 0.2 s until it is."""
        raise NotImplementedError

    def not_ready_error(self) -> str:
        """The error when the server is not ready within startup_timeout_s (named by `timeout_setting`)."""
        return (f"{self.program} did not become ready within {self.startup_timeout_s:.0f} s "
                f"({self.timeout_setting}).")

    def model_stats(self) -> dict:
        """The server's cumulative counters of its model (their form is the subclass's)."""
        raise NotImplementedError

    @staticmethod
    def answered_requests(stats: dict) -> int:
        """How many requests a `model_stats()` snapshot has counted."""
        raise NotImplementedError

    @staticmethod
    def window_stats(before: dict, after: dict) -> dict:
        """The server's per-request breakdown between two `model_stats()` snapshots, in the result schema's
        `server` form: requests, executions, mean_batch_per_execution, server_total_ms and ms per phase."""
        raise NotImplementedError

    def settled_model_stats(self, timeout_s: float = 2.0) -> dict:
        """`model_stats()` once the last responses are counted: a server counts a request just after replying,
        so snapshots are taken every 50 ms until two agree on the request count (at most timeout_s)."""
        stats = self.model_stats()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            time.sleep(0.05)
            again = self.model_stats()
            if self.answered_requests(again) == self.answered_requests(stats):
                return again
            stats = again
        return stats

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self, attempts: int = 3) -> None:
        """Start and wait until ready; a port grabbed by someone else between choosing and binding it is
        retried with fresh ports (a server may only report it after loading the model)."""
        _terminate_on_sigterm()
        for attempt in range(1, attempts + 1):
            try:
                return self._start_once()
            except ServerError as error:
                if "already in use" not in str(error) or attempt == attempts:
                    raise
                log.warning("port collision (attempt %d of %d), retrying with fresh ports", attempt, attempts)

    def _start_once(self) -> None:
        self.ports = dict(zip(self.port_names, free_ports(len(self.port_names))))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            for name, argv, env in self.commands():
                log.info("starting %s: %s", name, " ".join(argv))
                with open(self.log_path, "ab") as server_log:
                    server_log.write(f"$ {' '.join(argv)}\n".encode())
                    server_log.flush()
                    process = subprocess.Popen(argv, stdout=server_log, stderr=subprocess.STDOUT, env=env,
                                               stdin=subprocess.DEVNULL, start_new_session=True,
                                               preexec_fn=_die_with_parent)
                if self.process is None:
                    self.process, self.process_name = process, name
                else:
                    self.companions.append((name, process))
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        log.info("%s ready in %.1f s (pid %d, ports %s)", self.program, self.ready_after_s, self.process.pid,
                 self.ports)

    def _all_processes(self) -> list[tuple[str, subprocess.Popen]]:
        first = [(getattr(self, "process_name", self.program), self.process)] if self.process else []
        return first + self.companions

    def _exited(self) -> tuple[str, int] | None:
        """The first of the server's processes that has exited: (name, exit code)."""
        for name, process in self._all_processes():
            if process.poll() is not None:
                return name, process.returncode
        return None

    def _wait_ready(self) -> None:
        start = time.monotonic()
        deadline = start + self.startup_timeout_s
        while time.monotonic() < deadline:
            exited = self._exited()
            if exited:
                raise ServerError(f"{exited[0]} exited with code {exited[1]} before it was ready.\n{self.log_tail()}")
            if self.ready():
                self.ready_after_s = time.monotonic() - start
                return
            time.sleep(0.2)
        raise ServerError(f"{self.not_ready_error()}\n{self.log_tail()}")

    def raise_if_exited(self, cause: BaseException) -> None:
        """A failed request whose server has died: say so, with the server log's tail, not the client's
        transport error alone."""
        if self.process is None:
            return
        deadline = time.monotonic() + EXIT_SETTLE_S  # a killed server closes its sockets before it is reaped
        while time.monotonic() < deadline:
            exited = self._exited()
            if exited:
                raise ServerError(f"{exited[0]} exited with code {exited[1]} while serving "
                                  f"({type(cause).__name__}: {str(cause)[:200]}).\n{self.log_tail()}") from cause
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM to every process group of the server, SIGKILL after the grace period; idempotent."""
        processes = self._all_processes()
        for _, process in processes:
            if process.poll() is None:
                _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace_s
        for name, process in processes:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s ignored SIGTERM for %.0f s: SIGKILL", name, self.stop_grace_s)
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
        # helpers (backend stubs) live in the same groups; make sure none outlives the server
        deadline = time.monotonic() + self.stop_grace_s
        for _, process in processes:
            while _group_alive(process.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _group_alive(process.pid):
                _signal_group(process.pid, signal.SIGKILL)
        for name, process in processes:
            log.info("%s stopped (exit code %s)", name, process.returncode)
        self.process, self.companions = None, []

    def log_tail(self, lines: int = 40) -> str:
        """The last `lines` lines of the server log under a header naming it (or "(no server log)")."""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no server log)"
        return f"--- last {min(lines, len(text))} lines of {self.log_path} ---\n" + "\n".join(text[-lines:])


class TritonServer(ManagedServer):
    """Context manager: `with TritonServer(launcher, repository, model, log_path) as server: ...`."""

    program = "tritonserver"
    port_names = ("http", "grpc", "metrics")
    timeout_setting = "triton.startup_timeout_s"

    def __init__(self, launcher, repository: str | Path, model_name: str, log_path: str | Path,
                 startup_timeout_s: float = 120.0, stop_grace_s: float = 10.0):
        super().__init__(log_path, startup_timeout_s, stop_grace_s)
        self.launcher = launcher
        self.repository = Path(repository).resolve()
        self.model_name = model_name
        self.server_ready = False

    def commands(self) -> list[tuple[str, list[str], dict]]:
        """The one tritonserver process, as the launcher starts it, on loopback."""
        argv, env = self.launcher.command(self.repository, self.model_name, self.ports, LOOPBACK)
        self.server_ready = False
        return [(self.program, argv, env)]

    def ready(self) -> bool:
        """Whether /v2/health/ready and the model's ready endpoint both answer 200."""
        if not self.server_ready:
            self.server_ready = self._get_status("/v2/health/ready") == 200
        return self.server_ready and self._get_status(f"/v2/models/{self.model_name}/ready") == 200

    def not_ready_error(self) -> str:
        """The error when the model is not READY within triton.startup_timeout_s."""
        return (f"tritonserver did not report model {self.model_name!r} READY within "
                f"{self.startup_timeout_s:.0f} s (triton.startup_timeout_s).")

    # ------------------------------------------------------------------ queries
    @property
    def http_url(self) -> str:
        """host:port of the HTTP endpoint (loopback)."""
        return f"{LOOPBACK}:{self.ports['http']}"

    @property
    def grpc_url(self) -> str:
        """host:port of the gRPC endpoint (loopback)."""
        return f"{LOOPBACK}:{self.ports['grpc']}"

    def _get_status(self, path: str) -> int | None:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}{path}", timeout=2) as response:
                return response.status
        except (urllib.error.URLError, OSError):
            return None

    def get_json(self, path: str) -> dict:
        """GET `path` from the HTTP endpoint as JSON; a server that has died raises ServerError with its log."""
        try:
            with urllib.request.urlopen(f"http://{self.http_url}{path}", timeout=10) as response:
                return json.loads(response.read())
        except OSError as error:  # a server that died between requests (stats, version): say so, as requests do
            self.raise_if_exited(error)
            raise

    def model_stats(self) -> dict:
        """Cumulative server-side counters of the model: {success, queue, compute_input, ...: {count, ns}}."""
        stats = self.get_json(f"/v2/models/{self.model_name}/stats")["model_stats"][0]
        return {**stats["inference_stats"], "inference_count": stats.get("inference_count", 0),
                "execution_count": stats.get("execution_count", 0)}

    @staticmethod
    def answered_requests(stats: dict) -> int:
        """The model's successful request count of a model_stats() snapshot."""
        return stats["success"]["count"]

    @staticmethod
    def window_stats(before: dict, after: dict) -> dict:
        """Triton's per-request breakdown between two snapshots (serving.server.stats_window)."""
        return stats_window(before, after)

    def version(self) -> str:
        """The server's version from GET /v2 ("unknown" when it does not say)."""
        return self.get_json("/v2").get("version", "unknown")


def _signal_group(group: int, signum: int) -> None:
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        pass


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def stats_window(before: dict, after: dict) -> dict:
    """Per-request server-side time breakdown (ms) between two `model_stats()` snapshots."""
    requests = after["success"]["count"] - before["success"]["count"]
    if requests <= 0:
        return {"requests": 0}
    per_request = {
        f"{phase}_ms": (after[phase]["ns"] - before[phase]["ns"]) / requests / 1e6
        for phase in ("success", "queue", "compute_input", "compute_infer", "compute_output")
    }
    executions = after["execution_count"] - before["execution_count"]
    return {"requests": requests, "executions": executions,
            "mean_batch_per_execution": (after["inference_count"] - before["inference_count"]) / max(executions, 1),
            **{("server_total_ms" if k == "success_ms" else k): v for k, v in per_request.items()}}
