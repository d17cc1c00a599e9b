"""The readable line of shape_calculator's memory block (skills.memory): the figures in MB, torchinfo's beside them."""

from skills.reports import MemoryReport


def mb(n: int | float) -> str:
    """Bytes as MB (1e6 bytes, torchinfo's unit), two decimals; small sizes in kB or B."""
    if n >= 10_000:
        return f"{n / 1e6:,.2f} MB"
    return f"{n / 1e3:.2f} kB" if n >= 1_000 else f"{n:,} B"


def memory_line(m: MemoryReport | None) -> str:
    """'\\nmemory (float32, batch 1, inference): ...' for the tool's text, or '' without a memory block."""
    if m is None:
        return ""
    head = (
        f"\nmemory ({m.dtype}, batch {m.batch_size}, {m.mode}): {mb(m.total_bytes)}; params {mb(m.params_bytes)}, "
        f"buffers {mb(m.buffers_bytes)}, inference peak {mb(m.inference_peak_bytes)} at {m.inference_peak_at}, "
        f"every layer's output {mb(m.activation_bytes)}; training with {m.optimizer} {mb(m.training_bytes)} "
        f"(saved for backward {mb(m.saved_for_backward_bytes)}, gradients {mb(m.gradient_bytes)}, "
        f"optimizer state {mb(m.optimizer_state_bytes)})"
    )
    info = (
        f"\ntorchinfo: Input size (MB): {m.torchinfo_input_mb:.2f}, Forward/backward pass size (MB): "
        f"{m.torchinfo_forward_backward_mb:.2f}, Params size (MB): {m.torchinfo_params_mb:.2f}, "
        f"Estimated Total Size (MB): {m.torchinfo_total_mb:.2f}"
    )
    return head + info
