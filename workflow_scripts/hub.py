"""Hugging Face hub reachability: probe once, fast, instead of letting every call time out slowly."""

import logging
import os
import socket
from urllib.parse import urlparse

log = logging.getLogger("hub")


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the Hugging Face hub (HF_ENDPOINT) answers a TCP connection within timeout_s; False in offline mode."""
    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "TRUE", "yes"):
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = urlparse(endpoint).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def go_offline_if_unreachable() -> bool:
    """Switch this process to offline mode (cache only) when the hub cannot be reached; return reachability.

    Must run before transformers/datasets are imported: they read the offline flags at import time.
    """
    if hub_reachable():
        return True
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    log.info("Hugging Face hub not reachable: offline mode (local cache only)")
    return False
