"""Closed-loop load on a Triton server: N clients, each sending batch-1 requests back to back.

The clients run as threads spread over several processes: in one interpreter the GIL, not the server, caps
the request rate (on an H200, 64 threads of one process kept only ~11 requests per server batch in flight).
Light on imports (no torch): every client process imports this module.
"""
import multiprocessing
import os
import threading
import time
from queue import Empty

import numpy as np


def client_module(protocol: str):
    """tritonclient.grpc for "grpc", else tritonclient.http (imported on demand)."""
    if protocol == "grpc":
        import tritonclient.grpc as module
    else:
        import tritonclient.http as module
    return module


def infer(client, module, model_name: str, output: str, input_ids: np.ndarray,
          attention_mask: np.ndarray) -> np.ndarray:
    """One request: the token ids and mask in, the logits out."""
    inputs = [module.InferInput("input_ids", list(input_ids.shape), "INT64"),
              module.InferInput("attention_mask", list(attention_mask.shape), "INT64")]
    inputs[0].set_data_from_numpy(input_ids)
    inputs[1].set_data_from_numpy(attention_mask)
    result = client.infer(model_name, inputs, outputs=[module.InferRequestedOutput(output)])
    return result.as_numpy(output)


def planned_processes(setting, concurrency: int) -> int:
    """auto: one client process per two of the cores this job may use (the server needs the rest; a Slurm
    allocation or taskset gives fewer than the machine has), never more than the clients."""
    wanted = max(1, len(os.sched_getaffinity(0)) // 2) if setting == "auto" else int(setting)
    return max(1, min(wanted, concurrency))


START_TIMEOUT_S = 120  # for every client process to import its client library and connect


class LoadClientDied(RuntimeError):
    """A client process exited before reporting: its clients' requests are unknown, so the level has no result."""


def closed_loop(target: dict, input_ids: np.ndarray, attention_mask: np.ndarray, concurrency: int,
                seconds: float, warmup_seconds: float, processes: int) -> tuple[list[float], int]:
    """Latencies (ms) of the requests completed in the measured window, and the number of failed requests.

    target: protocol, url, model_name, output. Client i sends rows i, i+N, i+2N, ... of the inputs.
    """
    context = multiprocessing.get_context("spawn")  # never fork a process that holds gRPC channels
    clients = [list(range(concurrency))[p::processes] for p in range(processes)]
    connected, go, results = context.Queue(), context.Event(), context.Queue()
    workers = [context.Process(target=_client_process, daemon=True,
                               args=(target, input_ids, attention_mask, ids, concurrency, seconds, warmup_seconds,
                                     connected, go, results)) for ids in clients]
    for worker in workers:
        worker.start()
    try:
        # every process has imported its client library and connected; then all start their window together
        _collect(connected, workers, timeout=START_TIMEOUT_S, what="connecting")
        go.set()
        outcomes = _collect(results, workers, timeout=warmup_seconds + seconds + START_TIMEOUT_S, what="measuring")
    except BaseException:
        for worker in workers:  # the level has failed: its other clients' requests would be wasted load
            worker.kill()
        raise
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
    return [ms for latencies, _ in outcomes for ms in latencies], sum(errors for _, errors in outcomes)


def _collect(queue, workers, timeout: float, what: str) -> list:
    """One message from every worker; a worker that dies first fails at once, naming its exit code."""
    messages, deadline = [], time.monotonic() + timeout
    while len(messages) < len(workers):
        try:
            messages.append(queue.get(timeout=0.5))
            continue
        except Empty:
            pass
        # a worker that exited cleanly has already queued its message; one that crashed never will
        dead = [w for w in workers if w.exitcode not in (None, 0)]
        if dead:
            raise LoadClientDied(f"load client process {dead[0].pid} exited with code {dead[0].exitcode} while "
                                 f"{what} ({len(messages)} of {len(workers)} processes had reported)")
        if time.monotonic() > deadline:
            raise TimeoutError(f"load clients: {len(messages)} of {len(workers)} processes reported within "
                               f"{timeout:.0f} s while {what}")
    return messages


def _client_process(target, input_ids, attention_mask, client_ids, concurrency, seconds, warmup_seconds, connected,
                    go, results) -> None:
    module = client_module(target["protocol"])
    latencies: list[list[float]] = [[] for _ in client_ids]
    errors = [0] * len(client_ids)
    window = {}
    threads_ready = threading.Barrier(len(client_ids) + 1)

    def client_loop(slot: int, row: int) -> None:
        client = module.InferenceServerClient(url=target["url"])
        threads_ready.wait()
        while True:
            now = time.perf_counter()
            if now >= window["end"]:
                break
            try:
                infer(client, module, target["model_name"], target["output"], input_ids[row:row + 1],
                      attention_mask[row:row + 1])
            except Exception:  # counted; a failing server shows as errors, not as fast requests
                errors[slot] += 1
            done = time.perf_counter()
            if now >= window["begin"]:
                latencies[slot].append((done - now) * 1000.0)
            row = (row + concurrency) % len(input_ids)
        client.close()

    threads = [threading.Thread(target=client_loop, args=(slot, row), daemon=True)
               for slot, row in enumerate(i % len(input_ids) for i in client_ids)]
    for thread in threads:
        thread.start()
    connected.put(os.getpid())
    if not go.wait(timeout=START_TIMEOUT_S):  # the parent gave up on another process: send nothing
        window["begin"] = window["end"] = 0.0
    else:
        now = time.perf_counter()
        window["begin"], window["end"] = now + warmup_seconds, now + warmup_seconds + seconds
    threads_ready.wait()
    for thread in threads:
        thread.join()
    results.put(([ms for per_client in latencies for ms in per_client], sum(errors)))
