"""What every served engine shares: `run()` is one KServe v2 request (tritonclient) to a server that `load()`
started, the statistics window is the server's own counters between two settled snapshots, and `close()`
leaves no client or server behind. Triton (engines/triton.py) and NVIDIA Dynamo (engines/dynamo.py) add how
their server starts and what they can serve."""
import torch

from workflow_scripts.engines.base import Engine
from workflow_scripts.serving.load_clients import client_module, infer


class ServedEngine(Engine):
    """A served engine. `load()` of a subclass sets `server` (a serving.server.ManagedServer, started),
    `model_name` and `output` (the served model and its logits output), then calls `connect()`."""

    input_device = "cpu"  # requests carry host arrays: sending them is part of what serving costs
    server = None
    client = None

    def url(self) -> str:
        """host:port of the server's endpoint for this engine's protocol."""
        return self.server.grpc_url if self.spec.protocol == "grpc" else self.server.http_url

    def request_target(self) -> dict:
        """Where and what a client sends requests to: {protocol, url, model_name, output}."""
        return {"protocol": self.spec.protocol, "url": self.url(), "model_name": self.model_name,
                "output": self.output}

    def connect(self) -> None:
        """Open this engine's client to the started server (`client`)."""
        self.client = client_module(self.spec.protocol).InferenceServerClient(url=self.url())

    def check_batch(self, input_ids: torch.Tensor) -> None:
        """Raise EngineUnavailable for a batch the server cannot take (nothing by default)."""

    def run(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits [batch, num_labels] float32 (CPU) of one request with int64 host tensors [batch, seq_len]. A
        failed request whose server has died raises serving.server.ServerError with the server log's tail."""
        self.check_batch(input_ids)
        try:
            logits = infer(self.client, client_module(self.spec.protocol), self.model_name, self.output,
                           input_ids.numpy(), attention_mask.numpy())
        except Exception as error:
            self.server.raise_if_exited(error)
            raise
        return torch.from_numpy(logits.copy())  # the client's buffer is read-only

    def begin_window(self) -> None:
        """Snapshot the server's counters before the timed requests. Settled: a server counts a request just
        after replying, and the last warm-up reply is that fresh; unsettled, it would count in the window."""
        self.stats_before = self.server.settled_model_stats()

    def end_window(self) -> dict:
        """The server's own per-request breakdown over the window (requests, executions, mean batch, ms per
        phase: the server's `window_stats`)."""
        return self.server.window_stats(self.stats_before, self.server.settled_model_stats())

    def release(self) -> None:
        """What a subclass started besides the server (a launcher's temporary files); called by close()."""

    def close(self) -> None:
        """Close the client, stop the server, then `release()`; safe after a load() that failed half-way."""
        try:
            if self.client is not None:
                self.client.close()  # an open HTTP keep-alive connection would hold the server's shutdown
        finally:
            try:
                if self.server is not None:
                    self.server.stop()
            finally:
                self.release()
