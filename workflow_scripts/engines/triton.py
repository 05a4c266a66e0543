"""Served engines: the model behind NVIDIA Triton Inference Server, one request per batch.

Names: triton-<backend>-<protocol>, backend python (the Hugging Face model run with torch inside Triton's
Python backend) or pytorch (the TorchScript export in Triton's libtorch backend), protocol grpc or http.
load() starts the server (workflow_scripts/serving/launchers.py) and waits until the model is READY;
close() stops it. Inputs are host arrays: sending them is part of what serving costs. The timed requests come
from settings["client"] (triton.load.client): perf_analyzer where it runs (timed_by_client), else run() in the
shared timing loop (the Python tritonclient); the correctness check always goes through run().
"""
from pathlib import Path

import numpy as np
import torch

from workflow_scripts.engines.base import Engine, EngineUnavailable
from workflow_scripts.serving import perf_analyzer
from workflow_scripts.serving.launchers import make_launcher, missing_runtime
from workflow_scripts.serving.load_clients import client_module, infer
from workflow_scripts.serving.model_repository import output_name
from workflow_scripts.serving.server import TritonServer, stats_window
from workflow_scripts.results import read_json


class TritonEngine(Engine):
    input_device = "cpu"

    def unavailable_reason(self) -> str | None:
        """None: the server decides what it can run (fp16 on CPU fails at load with its own message)."""
        return None  # the server decides what it can run; fp16 on CPU fails at load with its own message

    def load(self) -> None:
        """Start the server on the model repository (artifact) and connect a client; EngineUnavailable when the
        repository was skipped or the launcher lacks the backend (launchers.missing_runtime)."""
        self.backend, self.protocol = self.spec.backend, self.spec.protocol
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
        self.client = self.new_client()
        self.notes.append(f"tritonserver {self.server.version()} via {self.launcher.name} launcher, ready in "
                          f"{self.server.ready_after_s:.1f} s; server log: {log_path}")

    def tool_command(self, argv: list[str]) -> list[str]:
        return self.launcher.tool_command(argv)  # inside the server's container, if any

    def request_target(self) -> dict:
        """Where and what a client sends requests to: {protocol, url, model_name, output}."""
        url = self.server.grpc_url if self.protocol == "grpc" else self.server.http_url
        return {"protocol": self.protocol, "url": url, "model_name": self.model_name, "output": self.output}

    def new_client(self):
        """A tritonclient client of this engine's protocol, connected to the server."""
        return client_module(self.protocol).InferenceServerClient(url=self.request_target()["url"])

    def request(self, client, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Logits [batch, num_labels] (float32 numpy) of one request with int64 host arrays [batch, seq_len]."""
        return infer(client, client_module(self.protocol), self.model_name, self.output, input_ids, attention_mask)

    def run(self, input_ids, attention_mask):
        """Logits of one request; EngineUnavailable for dynamic padding or a batch above max_batch_size."""
        if input_ids.shape[1] != self.seq_len:
            raise EngineUnavailable(f"the Triton model's inputs have fixed dims [{self.seq_len}]: dynamic padding "
                                    "is not served")
        if input_ids.shape[0] > self.max_batch_size:
            raise EngineUnavailable(f"batch {input_ids.shape[0]} exceeds the Triton model's max_batch_size "
                                    f"{self.max_batch_size} (triton.repository.max_batch_size)")
        try:
            logits = self.request(self.client, input_ids.numpy(), attention_mask.numpy())
        except Exception as error:
            self.server.raise_if_exited(error)
            raise
        return torch.from_numpy(logits.copy())  # the client's buffer is read-only

    def begin_window(self) -> None:
        """Snapshot the server's model statistics before the timed iterations."""
        # settled: the server counts a request just after replying, and the last warm-up reply is that fresh
        self.stats_before = self.server.settled_model_stats()

    def end_window(self) -> dict:
        """The server's statistics over the window (queue, compute ms per request, mean batch)."""
        return stats_window(self.stats_before, self.server.settled_model_stats())

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

    def close(self) -> None:
        """Close the client, stop the server, remove the launcher's temporary files."""
        client = getattr(self, "client", None)
        if client is not None:
            client.close()  # an open HTTP keep-alive connection would hold the server's shutdown for its timeout
        server = getattr(self, "server", None)
        if server is not None:
            server.stop()
        launcher = getattr(self, "launcher", None)
        if launcher is not None:
            launcher.cleanup()
