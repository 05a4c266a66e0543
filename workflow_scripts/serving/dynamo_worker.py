"""The NVIDIA Dynamo worker: inferbench's own in-process engine behind Dynamo's runtime, as a tensor model.

Started by serving/dynamo.py next to `python -m dynamo.frontend --kserve-grpc-server`; the frontend finds it
through the file discovery backend (no etcd, no NATS) and forwards each KServe v2 gRPC request over the TCP
request plane. The worker loads the engine once (e.g. `eager`, or `compile-reduce-overhead`: the CUDA-graphed
model), and only then registers the model, so "model ready" at the frontend means it can answer. Its first
request pays what the engine's first call pays in-process (compilation, CUDA graph capture).

Tensors: `input_ids` and `attention_mask` INT64 [batch, sequence] in (any sequence length), `logits` FP32
[batch, num_labels] out. Dynamo's tensor API carries values as lists (no fp16/bf16 over the wire; the engine
may compute in either), and does no dynamic batching: each request is one forward. Requests run on the event loop's thread, the
thread that loaded the engine (CUDA graphs captured there replay there), one after another.

Counters (cumulative, int64, in a file the server reads without a request: `counters()`): requests, rows,
and the nanoseconds spent turning the request's lists into device tensors (input), in the forward including
the copy of the logits to the host (infer), and turning the logits into the response (output).
"""
import argparse
import asyncio
import json
import logging
import time

import numpy as np

COUNTERS = ("requests", "rows", "input_ns", "infer_ns", "output_ns")
INPUTS = ("input_ids", "attention_mask")
OUTPUT = "logits"
log = logging.getLogger("dynamo_worker")


def counters(path) -> dict:
    """The worker's cumulative counters, read from its counter file."""
    return dict(zip(COUNTERS, (int(v) for v in np.fromfile(path, dtype=np.int64, count=len(COUNTERS)))))


def tensor_model_config(model_name: str, num_labels: int) -> dict:
    """What the frontend reports as the model's metadata (KServe ModelMetadata)."""
    return {"name": model_name,
            "inputs": [{"name": name, "data_type": "Int64", "shape": [-1, -1]} for name in INPUTS],
            "outputs": [{"name": OUTPUT, "data_type": "Float32", "shape": [-1, num_labels]}]}


class TensorHandler:
    """Dynamo request handler: the request's tensors through the engine, fp32 logits back."""

    def __init__(self, engine, counter_path):
        import torch

        self.torch = torch
        self.engine = engine
        self.device = engine.input_device or engine.device
        self.counts = np.memmap(counter_path, dtype=np.int64, mode="w+", shape=(len(COUNTERS),))

    def forward(self, tensors: dict) -> np.ndarray:
        """tensors: name -> Dynamo tensor ({metadata: {name, shape, data_type}, data: {values}})."""
        start = time.perf_counter_ns()
        inputs = []
        for name in INPUTS:
            tensor = tensors[name]
            values = np.asarray(tensor["data"]["values"], dtype=np.int64).reshape(tensor["metadata"]["shape"])
            inputs.append(self.torch.from_numpy(values).to(self.device))
        decoded = time.perf_counter_ns()
        logits = self.engine.run(*inputs).float().cpu().numpy()
        inferred = time.perf_counter_ns()
        self.counts[1] += logits.shape[0]
        self.counts[2] += decoded - start
        self.counts[3] += inferred - decoded
        return logits

    async def generate(self, request, context=None):
        """Answer one KServe tensor request: logits float32 [batch, num_labels] as the `OUTPUT` tensor; counts
        the request and its decode / infer / encode nanoseconds. Raises ValueError when an input tensor is missing."""
        tensors = {tensor["metadata"]["name"]: tensor for tensor in request.get("tensors", [])}
        missing = [name for name in INPUTS if name not in tensors]
        if missing:
            raise ValueError(f"request lacks input tensor(s) {missing}; expected {list(INPUTS)}")
        logits = self.forward(tensors)
        start = time.perf_counter_ns()
        response = {"model": request.get("model"), "tensors": [{
            "metadata": {"name": OUTPUT, "shape": list(logits.shape), "data_type": "Float32"},
            "data": {"data_type": "Float32", "values": logits.ravel().tolist()}}]}
        self.counts[4] += time.perf_counter_ns() - start
        self.counts[0] += 1
        yield response


async def serve(args) -> None:
    """Load the engine, register it with Dynamo as a tensor-based model and serve requests until stopped."""
    from dynamo.llm import ModelInput, ModelType, WorkerType, register_model
    from dynamo.runtime import DistributedRuntime

    from workflow_scripts.engines import create

    engine = create(args.engine, model_dir=args.model_dir, device=args.device, precision=args.precision,
                    settings=json.loads(args.settings))
    engine.load()
    handler = TensorHandler(engine, args.counters)
    log.info("engine %s (%s, %s) loaded", args.engine, args.precision, args.device)

    runtime = DistributedRuntime(asyncio.get_running_loop(), "file", "tcp")
    endpoint = runtime.endpoint(f"{args.namespace}.worker.generate")
    await register_model(ModelInput.Tensor, ModelType.TensorBased, endpoint, args.model_name, args.model_name,
                         worker_type=WorkerType.Aggregated,
                         tensor_model_config=tensor_model_config(args.model_name, args.num_labels))
    log.info("model %s registered in namespace %s", args.model_name, args.namespace)
    await endpoint.serve_endpoint(handler.generate)


def main(argv=None) -> None:
    """The command line of the worker process that DynamoServer starts."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", required=True, help="the in-process engine to serve, e.g. eager")
    parser.add_argument("--settings", default="{}", help="that engine's settings (JSON)")
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--device", required=True, choices=["cpu", "cuda"])
    parser.add_argument("--precision", required=True)
    parser.add_argument("--num-labels", type=int, required=True)
    parser.add_argument("--model-name", required=True, help="the name clients request")
    parser.add_argument("--namespace", required=True, help="Dynamo namespace the frontend watches")
    parser.add_argument("--counters", required=True, help="file of the cumulative counters (written here)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    import uvloop

    uvloop.run(serve(args))


if __name__ == "__main__":
    main()
