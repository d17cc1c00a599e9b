"""Input, kernel and output of a convolution side by side as one PNG (Pillow, imported on first use).

Each array is upscaled nearest-neighbour so a 5x5 kernel is visible; arrays with negative values use a
diverging blue-white-red scale centred on 0, the others a grey scale from their min (black) to max (white).
Rows are channels (at most MAX_ROWS): input channel r, kernel [r, 0], output channel r.
"""

from __future__ import annotations

import io
from typing import Any

MAX_ROWS = 4
PANEL = 192  # target panel size in pixels
LABEL_H = 14
GAP = 8
_BLUE, _WHITE, _RED = (59, 76, 192), (255, 255, 255), (180, 4, 38)


def _colour(a) -> Any:
    """A [H, W] array -> [H, W, 3] uint8: grey for non-negative data, blue-white-red (0 = white) for signed data."""
    import numpy as np

    big = np.finfo(np.float64).max
    a = np.nan_to_num(np.asarray(a, dtype=np.float64), nan=0.0, posinf=big, neginf=-big)
    lo, hi = float(a.min()), float(a.max())
    if lo < 0:
        m = max(-lo, hi) or 1.0
        t = (a / m)[..., None]  # in [-1, 1]
        white, blue, red = (np.array(c, dtype=np.float64) for c in (_WHITE, _BLUE, _RED))
        rgb = np.where(t < 0, white + (blue - white) * -t, white + (red - white) * t)
    else:
        span = hi - lo
        g = (a - lo) / span if span > 0 else np.full(a.shape, 0.5 if hi > 0 else 0.0)
        rgb = np.repeat((g * 255)[..., None], 3, axis=2)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _panel(a, label: str):
    """One array as an upscaled RGB image with its label above."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(_colour(a), "RGB")
    h, w = a.shape
    scale = max(1, PANEL // max(h, w))
    size = (w * scale, h * scale)
    if max(size) > 2 * PANEL:  # big arrays are shrunk, still nearest-neighbour
        f = 2 * PANEL / max(size)
        size = (max(1, int(size[0] * f)), max(1, int(size[1] * f)))
    img = img.resize(size, Image.Resampling.NEAREST)
    out = Image.new("RGB", (max(size[0], 7 * len(label)), size[1] + LABEL_H), "white")
    out.paste(img, (0, LABEL_H))
    draw = ImageDraw.Draw(out)
    draw.text((0, 1), label, fill="black")
    draw.rectangle(
        (0, LABEL_H, size[0] - 1, LABEL_H + size[1] - 1), outline=(150, 150, 150)
    )  # white data on white page
    return out


def _range(a) -> str:
    return f"{float(a.min()):.3g}..{float(a.max()):.3g}"


def render(x: Any, weight: Any, output: Any, title: str = "") -> bytes:
    """PNG bytes: columns input | kernel | output, one row per channel (x [C,H,W], weight [C_out,C_in/g,kH,kW], output [C_out,H_out,W_out]; a batch shows its first image)."""
    import numpy as np
    from PIL import Image, ImageDraw

    x, w, y = (np.asarray(v, dtype=np.float64) for v in (x, weight, output))
    x = x[0] if x.ndim == 4 else (x[None] if x.ndim == 2 else x)
    y = y[0] if y.ndim == 4 else (y[None] if y.ndim == 2 else y)
    w = w[None, None] if w.ndim == 2 else w
    rows = min(MAX_ROWS, max(x.shape[0], y.shape[0]))
    grid = []
    for r in range(rows):
        row = []
        if r < x.shape[0]:
            row.append(_panel(x[r], f"input c{r} {x.shape[1]}x{x.shape[2]} [{_range(x[r])}]"))
        else:
            row.append(None)
        row.append(
            _panel(w[r % w.shape[0], 0], f"kernel [{r % w.shape[0]},0] {w.shape[2]}x{w.shape[3]}")
            if r < w.shape[0]
            else None
        )
        row.append(_panel(y[r], f"output c{r} {y.shape[1]}x{y.shape[2]} [{_range(y[r])}]") if r < y.shape[0] else None)
        grid.append(row)
    col_w = [max((row[c].width for row in grid if row[c] is not None), default=0) for c in range(3)]
    row_h = [max(p.height for p in row if p is not None) for row in grid]
    top = LABEL_H + GAP if title else GAP
    more = max(x.shape[0], y.shape[0]) > rows
    canvas = Image.new(
        "RGB", (sum(col_w) + GAP * 4, top + sum(row_h) + GAP * (rows + 1) + (LABEL_H if more else 0)), "white"
    )
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((GAP, GAP // 2), title, fill="black")
    yy = top
    for row, h in zip(grid, row_h, strict=True):
        xx = GAP
        for c, p in enumerate(row):
            if p is not None:
                canvas.paste(p, (xx, yy))
            xx += col_w[c] + GAP
        yy += h + GAP
    if more:
        draw.text((GAP, yy), f"(first {rows} of {max(x.shape[0], y.shape[0])} channels shown)", fill="black")
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", optimize=True)
    return buf.getvalue()
