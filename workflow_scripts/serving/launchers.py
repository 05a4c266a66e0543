"""Two ways to start `tritonserver`, behind one interface (`command()` -> argv and environment):

- LocalLauncher: the real tritonserver binary bundled in the nvidia-pytriton wheel (Python backend only).
- ApptainerLauncher: the official Triton container (`apptainer exec --nv`), e.g. on a Slurm GPU node.

`triton.launcher: auto` is resolved where the job runs: apptainer when the `apptainer` executable is on
PATH and the Triton image has been pulled, else local (e.g. inside the pipeline's own container).
"""
import importlib.util
import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

CONTAINER_REPOSITORY = "/models"


def tritonserver_args(repository: str, model_name: str, ports: dict, host: str) -> list[str]:
    """Flags common to both launchers: loopback only, load just this model, fail fast on errors."""
    return [
        f"--model-repository={repository}",
        "--model-control-mode=explicit", f"--load-model={model_name}",
        f"--http-address={host}", f"--http-port={ports['http']}",
        f"--grpc-address={host}", f"--grpc-port={ports['grpc']}",
        f"--metrics-address={host}", f"--metrics-port={ports['metrics']}",
        "--exit-on-error=true", "--strict-readiness=true", "--exit-timeout-secs=10",
        # our config.pbtxt is complete; auto-completion would import model.py (and torch) once more
        "--disable-auto-complete-config",
    ]


def resolve_launcher_name(requested: str, sif: str | Path) -> str:
    """`local` or `apptainer`: `auto` picks Apptainer when it is on PATH and the image `sif` exists."""
    if requested == "auto":
        return "apptainer" if shutil.which("apptainer") and Path(sif).exists() else "local"
    return requested


def missing_runtime(backend: str, settings: dict) -> str | None:
    """Why the launcher that settings (the config's `triton` slice) resolve to here cannot serve `backend`,
    with the fix; None when it can or when the Apptainer launcher is asked for by name (the run's deployment
    check names a missing `apptainer` then, and refuses)."""
    requested = settings["launcher"]  # only `auto` looks for the image
    name = resolve_launcher_name(requested, settings["apptainer"]["sif"]) if requested == "auto" else requested
    if name != "local":
        return None
    if backend not in LocalLauncher.backends:
        no_apptainer = " (and no `apptainer` is on PATH here)" if not shutil.which("apptainer") else ""
        return (f"Triton's {backend} backend comes only with the official Triton image, which the Apptainer "
                f"launcher runs; triton.launcher: {settings['launcher']} takes the tritonserver bundled in "
                f"nvidia-pytriton here{no_apptainer}, which has the {', '.join(LocalLauncher.backends)} backend "
                "only. Fix: install Apptainer (on clusters: module load apptainer) and set triton.launcher: "
                "apptainer, which pulls the image")
    if importlib.util.find_spec("pytriton") is None:
        return ("the local Triton launcher needs the nvidia-pytriton package, which bundles tritonserver. Fix: "
                "bash setup.sh (or pip install -e .)")
    return None


# The local launcher's backend folder: /tmp/inferbench-triton-<pid of the job>-<random>
WORKDIR_PREFIX = "inferbench-triton-"


def remove_stale_workdirs(root: str | Path | None = None, prefix: str = WORKDIR_PREFIX) -> list[Path]:
    """Remove the folders `<prefix><pid of the job>-...` of jobs that died without cleaning up (SIGKILL, a
    time limit): those whose job process is gone. Returns what it removed."""
    removed = []
    for path in Path(root or tempfile.gettempdir()).glob(f"{prefix}*"):
        pid = path.name.removeprefix(prefix).split("-", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (signal 0; another user's process counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


class LocalLauncher:
    """Runs the tritonserver binary bundled in the nvidia-pytriton wheel, Python backend only. gpu: a GPU
    is used (else GPU metrics and pinned memory are off); profiler: argv the server runs under. Raises
    RuntimeError when nvidia-pytriton or a part of its tritonserver is missing."""
    name = "local"
    backends = ("python",)

    def __init__(self, gpu: bool = False, profiler: list[str] | None = None):
        self.gpu = gpu
        self.profiler = profiler or []  # e.g. `nsys launch ...`: the server runs under a profiler
        spec = importlib.util.find_spec("pytriton")
        if spec is None:
            raise RuntimeError("the local Triton launcher needs the nvidia-pytriton package (pip install "
                               "nvidia-pytriton), which bundles tritonserver")
        root = Path(spec.origin).parent
        server = root / "tritonserver"
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        self.paths = {
            "binary": server / "bin" / "tritonserver",
            "python_backend": server / "backends" / "python",
            "stub": server / "python_backend_stubs" / version / "triton_python_backend_stub",
            "caches": server / "caches",
            "libs": root.parent / "nvidia_pytriton.libs",
        }
        missing = [f"{key}: {path}" for key, path in self.paths.items() if not path.exists()]
        if missing:
            raise RuntimeError(f"the nvidia-pytriton installation lacks parts of tritonserver: {missing}")
        self.workdir: Path | None = None

    def _backends(self) -> Path:
        """backends/python with the stub for this Python version beside the backend library."""
        if self.workdir is None:
            remove_stale_workdirs()
            self.workdir = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-"))
            python = self.workdir / "backends" / "python"
            shutil.copytree(self.paths["python_backend"], python, ignore=shutil.ignore_patterns("__pycache__"))
            shutil.copy2(self.paths["stub"], python / "triton_python_backend_stub")
        return self.workdir / "backends"

    def environment(self) -> dict:
        """The server's environment: this interpreter's libpython and the wheel's libraries on LD_LIBRARY_PATH,
        the venv's bin first on PATH."""
        env = os.environ.copy()
        # The backend stub links libpython: it must load this interpreter's, not the system's (a different
        # patch release fails inside threading). The venv's bin goes first so model.py imports its packages.
        libdir = sysconfig.get_config_var("LIBDIR")
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, str(self.paths["libs"]),
                                                             env.get("LD_LIBRARY_PATH")) if p)
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        return env

    def command(self, repository: Path, model_name: str, ports: dict, host: str) -> tuple[list[str], dict]:
        """(argv, environment) that start tritonserver on `host` with `ports` for one model of `repository`."""
        argv = [*self.profiler, str(self.paths["binary"]), *tritonserver_args(str(repository), model_name, ports, host),
                f"--backend-directory={self._backends()}", f"--cache-directory={self.paths['caches']}"]
        if not self.gpu:
            # no GPU: no GPU metrics and no pinned host memory (on a GPU, responses of a KIND_GPU Python
            # model came back empty without the pinned pool)
            argv += ["--allow-gpu-metrics=false", "--pinned-memory-pool-byte-size=0"]
        return argv, self.environment()

    def tool_command(self, argv: list[str]) -> list[str]:
        """A command that must run where the server runs (a profiler's start/stop)."""
        return argv

    def cleanup(self) -> None:
        """Remove the backends folder this launcher copied (idempotent)."""
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


class ApptainerLauncher:
    """Runs tritonserver inside the official container image `sif` with `apptainer exec` (--nv with a GPU);
    the model repository is bound read-only. Both backends (python, pytorch)."""
    name = "apptainer"
    backends = ("python", "pytorch")

    def __init__(self, sif: str | Path, gpu: bool, executable: str = "apptainer", profiler: list[str] | None = None):
        self.sif = Path(sif).resolve()
        self.gpu = gpu
        self.profiler = profiler or []  # runs inside the container, around tritonserver
        self.executable = shutil.which(executable)
        if self.executable is None:
            raise RuntimeError("triton.launcher is 'apptainer' but no apptainer executable is on PATH "
                               "(on clusters: module load apptainer)")
        if not self.sif.exists():
            raise RuntimeError(f"Triton image {self.sif} is missing: it is pulled by the rule "
                               "pull_triton_image (snakemake runs it before the Triton jobs)")

    def command(self, repository: Path, model_name: str, ports: dict, host: str) -> tuple[list[str], dict]:
        """(argv, environment) that start tritonserver in the container on `host` with `ports`."""
        argv = [self.executable, "exec", *(["--nv"] if self.gpu else []),
                "--bind", f"{repository}:{CONTAINER_REPOSITORY}:ro", str(self.sif),
                *self.profiler, "tritonserver", *tritonserver_args(CONTAINER_REPOSITORY, model_name, ports, host)]
        return argv, os.environ.copy()

    def tool_command(self, argv: list[str]) -> list[str]:
        """argv run inside the same container (a profiler's start and stop)."""
        return [self.executable, "exec", *(["--nv"] if self.gpu else []), str(self.sif), *argv]

    def cleanup(self) -> None:
        """Nothing to remove: the container leaves no files."""
        pass


def make_launcher(settings: dict, device: str):
    """settings: the config's `triton` slice; `profiler` (set by the Nsight Systems step) wraps the server."""
    name = settings["launcher"]
    if name == "auto":
        name = resolve_launcher_name(name, settings["apptainer"]["sif"])
    profiler = settings.get("profiler")
    if name == "local":
        return LocalLauncher(gpu=device == "cuda", profiler=profiler)
    return ApptainerLauncher(settings["apptainer"]["sif"], gpu=device == "cuda", profiler=profiler)
