"""Served engines: the model behind NVIDIA Triton Inference Server, one request per batch.

Names: triton-<backend>-<protocol>, backend python (the Hugging Face model run with torch inside Triton's
Python backend) or pytorch (the TorchScript export in Triton's libtorch backend), protocol grpc or http.
load() starts the server (workflow_scripts/serving/launchers.py) and waits until the model is READY;
close() stops it. Inputs are host arrays: sending them is part of what serving costs. The timed requests come
from settings["client"] (triton.load.client): perf_analyzer where it runs (timed_by_client), else run() in the
shared timing loop (the Python tritonclient); the correctness check always goes through run().
"""
from pathlib import Path

import torch

from workflow_scripts.engines.base import EngineUnavailable
from workflow_scripts.engines.served import ServedEngine
from workflow_scripts.serving import perf_analyzer
from workflow_scripts.serving.launchers import make_launcher, missing_runtime
from workflow_scripts.serving.model_repository import output_name
from workflow_scripts.serving.server import TritonServer
from workflow_scripts.results import read_json


class TritonEngine(ServedEngine):
    """NVIDIA Triton Inference Server running the model repository of its backend (python or pytorch);
    run() is an HTTP or gRPC request (engines.served.ServedEngine). The launcher starts the real tritonserver
    (local binary or Apptainer)."""
    launcher = None

    def unavailable_reason(self) -> str | None:
        """None: the server decides what it can run (fp16 on CPU fails at load with its own message)."""
        return None

    def load(self) -> None:
        """Start the server on the model repository (artifact) and connect a client; EngineUnavailable when the
        repository was skipped or the launcher lacks the backend (launchers.missing_runtime)."""
        self.backend = self.spec.backend
        (repository,) = (self.artifacts[kind] for kind in self.spec.artifacts)
        info = read_json(f"{repository}/repository.json")
        if info["status"] != "ok":
            raise EngineUnavailable(info["reason"])
        self.model_name, self.output = info["model_name"], output_name(self.backend)
        self.seq_len, self.max_batch_size = info["seq_len"], info["settings"]["max_batch_size"]
        missing = missing_runtime(self.backend, self.settings)  # the words the run's planning said too
        if missing:
            raise EngineUnavailable(missing)
        self.launcher = make_launcher(self.settings, self.device)
        log_path = (self.result_path.with_suffix(".server.log") if self.result_path else None)
        self.server = TritonServer(self.launcher, repository, self.model_name, log_path or "tritonserver.log",
                                   self.settings["startup_timeout_s"], self.settings["stop_grace_s"])
        client, fallback = perf_analyzer.choose_client(self.settings.get("client", "python"),
                                                       self.perf_analyzer_settings()["executable"])
        self.load_client = {"name": client, **({"perf_analyzer_unusable": fallback} if fallback else {})}
        self.server.start()
        self.connect()
        self.notes.append(f"tritonserver {self.server.version()} via {self.launcher.name} launcher, ready in "
                          f"{self.server.ready_after_s:.1f} s; server log: {log_path}")

    def tool_command(self, argv: list[str]) -> list[str]:
        """argv as it must run where the server runs: inside its container under Apptainer, else as it is."""
        return self.launcher.tool_command(argv)  # inside the server's container, if any

    def check_batch(self, input_ids: torch.Tensor) -> None:
        """EngineUnavailable for dynamic padding or a batch above the repository's max_batch_size."""
        if input_ids.shape[1] != self.seq_len:
            raise EngineUnavailable(f"the Triton model's inputs have fixed dims [{self.seq_len}]: dynamic padding "
                                    "is not served")
        if input_ids.shape[0] > self.max_batch_size:
            raise EngineUnavailable(f"batch {input_ids.shape[0]} exceeds the Triton model's max_batch_size "
                                    f"{self.max_batch_size} (triton.repository.max_batch_size)")

    def perf_analyzer_settings(self) -> dict:
        """triton.load.perf_analyzer with its defaults filled in."""
        return {"executable": "perf_analyzer", "stability_percentage": 10, "max_trials": 10,
                **self.settings.get("perf_analyzer", {})}

    def timed_by_client(self, batches: list[dict], measurement: dict) -> dict | None:
        """With perf_analyzer as the client: one closed-loop client sending requests of this cell's batch size
        made of the cell's rows, in windows as long as one repeat of the shared loop (measurement.windows x
        window_seconds) until three agree (see
        serving/perf_analyzer.py). Its CSV and console output are kept beside the result."""
        if self.load_client["name"] != "perf_analyzer":
            return None
        settings = self.perf_analyzer_settings()
        window_s = measurement["windows"] * measurement["window_seconds"]
        stem = (self.result_path or Path("cell.json")).with_suffix("")
        csv_path, console = f"{stem}.perf_analyzer.csv", f"{stem}.perf_analyzer.log"
        data = perf_analyzer.write_input_data(torch.cat([b["input_ids"] for b in batches]).numpy(),
                                              torch.cat([b["attention_mask"] for b in batches]).numpy(),
                                              f"{stem}.perf_analyzer_input.json")
        argv = perf_analyzer.command(settings["executable"], self.request_target(), len(batches[0]["input_ids"]),
                                     1, data, window_s * 1000, settings["stability_percentage"],
                                     settings["max_trials"], csv_path)
        self.load_client.update({"csv": csv_path, "log": console,
                                 "version": perf_analyzer.version(settings["executable"])})
        self.begin_window()
        try:
            perf_analyzer.run(argv, console, timeout_s=window_s * (settings["max_trials"] + 2) + 120)
        except perf_analyzer.PerfAnalyzerError as error:
            self.server.raise_if_exited(error)
            raise
        finally:
            data.unlink(missing_ok=True)
        server = self.end_window()
        measured = perf_analyzer.parse_csv(csv_path)[0]
        return {"latency": perf_analyzer.latency_result(measured), "server": server,
                "latency_split_ms": measured["split_ms"]}

    def release(self) -> None:
        """Remove the launcher's temporary files (after the server stopped)."""
        if self.launcher is not None:
            self.launcher.cleanup()
