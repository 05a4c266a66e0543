"""torch.compile (Inductor); the engine name picks the mode: compile-default, compile-reduce-overhead
(CUDA graphs), compile-max-autotune. Compilation happens on the first call, which the harness times apart;
each new input shape (dynamic padding) may compile again, and every shape the engine sees is allowed to."""

import torch

from workflow_scripts.engines.base import Engine, EngineUnavailable, allow_compiled_shapes, load_hf_model
from workflow_scripts.engines.compilers import missing_compiler


class CompiledEngine(Engine):
    """The Hugging Face model under torch.compile (Inductor); the mode is the engine name after `compile-`
    (default, reduce-overhead = CUDA graphs, max-autotune)."""
    def load(self) -> None:
        """The saved model wrapped in torch.compile with this engine's mode (compiled on first call).
        Raises EngineUnavailable (the cell is skipped) when the compiler torch.compile needs is missing."""
        missing = missing_compiler(self.device)
        if missing:
            raise EngineUnavailable(missing)
        self.mode = self.name.removeprefix("compile-")
        model = load_hf_model(self.model_dir, self.device, self.dtype, attn_implementation="sdpa")
        if self.mode == "reduce-overhead" and self.device != "cuda":
            self.notes.append("CUDA graphs exist only on CUDA: on CPU this mode compiles like 'default'")
        self.model = torch.compile(model, mode=self.mode, fullgraph=self.settings.get("fullgraph", True),
                                   dynamic=self.settings.get("dynamic"))
        self.shapes: set[tuple[int, ...]] = set()

    @torch.inference_mode()
    def run(self, input_ids, attention_mask):
        """Logits [batch, num_labels]; a new input shape first raises the recompile limit to cover it."""
        shape = tuple(input_ids.shape)
        if shape not in self.shapes:  # a new shape may compile anew: never past the recompile limit
            self.shapes.add(shape)
            allow_compiled_shapes(len(self.shapes))
        if self.mode == "reduce-overhead":
            # a new graph replay may overwrite the previous outputs; callers copy what they keep
            torch.compiler.cudagraph_mark_step_begin()
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    def describe(self) -> dict:
        """Settings, notes and how many input shapes were compiled."""
        return {**super().describe(), "input_shapes": len(self.shapes)}
