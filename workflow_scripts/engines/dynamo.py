"""Served engine: the model behind NVIDIA Dynamo's KServe gRPC frontend, one request per batch.

Not TorchDynamo (the graph capture inside torch.compile, which the compile-* engines use): NVIDIA Dynamo is
NVIDIA's distributed inference-serving framework (`ai-dynamo` on PyPI, the optional extra `dynamo`).
load() starts the frontend and a worker that runs the in-process engine named by settings["worker_engine"]
with settings["worker_settings"] (serving/dynamo.py, serving/dynamo_worker.py) and waits until the model is
ready; close() stops both. Requests are KServe v2 gRPC, sent with the same `tritonclient.grpc` client as the
Triton engines; inputs are host arrays, so sending them is part of what serving costs.
"""
from workflow_scripts.engines import create
from workflow_scripts.engines.base import EngineUnavailable
from workflow_scripts.engines.served import ServedEngine

OUTPUT = "logits"  # serving/dynamo_worker.py


class DynamoEngine(ServedEngine):
    """NVIDIA Dynamo's KServe gRPC frontend serving a worker that runs `dynamo.worker_engine` in-process;
    run() is a gRPC request (engines.served.ServedEngine)."""
    load_client = {"name": "python"}  # its cells are timed by the shared loop through tritonclient.grpc
    perf_analyzer_cannot_drive = ("perf_analyzer reads Triton's statistics API, which Dynamo's KServe frontend "
                                  "does not implement (UNIMPLEMENTED)")

    def unavailable_reason(self) -> str | None:
        """Dynamo or its loopback library's compiler missing here, or what the worker's engine itself cannot run
        (e.g. fp16 on CPU); None when the cell can run."""
        from workflow_scripts.serving.dynamo import missing_reason

        reason = missing_reason()
        if reason:
            return reason
        try:  # what the worker's engine cannot run here (e.g. fp16 on CPU), it cannot serve either
            create(self.settings["worker_engine"], model_dir=self.model_dir, device=self.device,
                   precision=self.precision, settings=self.settings.get("worker_settings") or {})
        except EngineUnavailable as error:
            return f"its worker engine {self.settings['worker_engine']}: {error}"
        return None

    def load(self) -> None:
        """Start the frontend and a worker (serving.dynamo.DynamoServer) on loopback, wait until the model is
        ready and connect the gRPC client. Raises serving.server.ServerError when the server does not come up."""
        from transformers import AutoConfig

        from workflow_scripts.serving.dynamo import DynamoServer, dynamo_version

        self.model_name, self.output = f"inferbench_{self.precision}", OUTPUT
        worker = {"engine": self.settings["worker_engine"], "settings": self.settings.get("worker_settings") or {},
                  "model_dir": str(self.model_dir), "device": self.device, "precision": self.precision,
                  "num_labels": AutoConfig.from_pretrained(self.model_dir).num_labels,
                  "profiler": self.settings.get("profiler") or []}  # the Nsight Systems step: the worker under nsys
        log_path = self.result_path.with_suffix(".server.log") if self.result_path else "dynamo.server.log"
        self.server = DynamoServer(worker, self.model_name, log_path, self.settings["startup_timeout_s"],
                                   self.settings["stop_grace_s"])
        self.server.start()
        self.connect()
        self.notes.append(f"NVIDIA Dynamo {dynamo_version()} KServe gRPC frontend serving "
                          f"{worker['engine']}, ready in {self.server.ready_after_s:.1f} s; server log: {log_path}")
