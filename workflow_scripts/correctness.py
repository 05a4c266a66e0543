"""Compare an engine's logits with the fp32 eager reference on the same rows."""

import torch


def compare(logits: torch.Tensor, reference: torch.Tensor, tolerance: dict) -> dict:
    """Logits [rows, num_labels] of an engine against the fp32 eager reference of the same rows (any float dtype,
    any device): {max_abs_diff, agreement (share of rows with the same argmax), within_tolerance} for tolerance
    {max_abs_diff, min_agreement}."""
    logits, reference = logits.float().cpu(), reference.float().cpu()
    max_abs_diff = float((logits - reference).abs().max())
    agreement = float((logits.argmax(dim=-1) == reference.argmax(dim=-1)).float().mean())
    within = max_abs_diff <= tolerance["max_abs_diff"] and agreement >= tolerance["min_agreement"]
    return {"max_abs_diff": max_abs_diff, "agreement": agreement, "rows_compared": int(logits.shape[0]),
            "tolerance": dict(tolerance), "within_tolerance": bool(within)}
