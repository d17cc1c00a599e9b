"""The ERF map as a PNG (Pillow, imported on first use): a heatmap for 2-D networks, a profile for 1-D ones.

Same look as skills.picture: nearest-neighbour upscaling, the grey scale from 0 (black) to the map's largest value
(white). Drawn over it: the theoretical receptive field clipped to the image (blue), the 95% and 50% mass windows of
the marginals (red, orange), and, beside a heatmap, its two marginal profiles.
"""

from __future__ import annotations

import io
from typing import Any

from .picture import _BLUE, _RED, GAP, LABEL_H, PANEL, _colour

_ORANGE = (230, 140, 0)
_BAR = (90, 90, 90)
PROFILE = 56  # height (px) of a marginal profile strip


def _fit(h: int, w: int) -> tuple[float, float, int, int]:
    """(y scale, x scale, height, width) of a panel showing an h x w map: whole pixels up to PANEL, at most 2*PANEL."""
    scale = max(1, PANEL // max(h, w))
    size_h, size_w = h * scale, w * scale
    if max(size_h, size_w) > 2 * PANEL:
        f = 2 * PANEL / max(size_h, size_w)
        size_h, size_w = max(1, int(size_h * f)), max(1, int(size_w * f))
    return size_h / h, size_w / w, size_h, size_w


def _clip(interval: list[int] | None, n: int) -> tuple[int, int] | None:
    if interval is None:
        return None
    a, b = max(interval[0], 0), min(interval[1], n - 1)
    return (a, b) if a <= b else None


def _profile(values, length: int, scale: float, height: int, vertical: bool, marks: list) -> Any:
    """One marginal as bars (length px along the axis), with the windows in `marks` [(interval, colour)] drawn as lines."""
    import numpy as np
    from PIL import Image, ImageDraw

    v = np.asarray(values, dtype=np.float64)
    top = float(v.max()) if v.size and v.max() > 0 else 1.0
    img = Image.new("RGB", (height, length) if vertical else (length, height), "white")
    draw = ImageDraw.Draw(img)
    for i, value in enumerate(v):
        a, b = int(i * scale), max(int((i + 1) * scale) - 1, int(i * scale))
        bar = int(round(value / top * (height - 8)))
        if bar <= 0:
            continue
        if vertical:
            draw.rectangle((0, a, bar, b), fill=_BAR)
        else:
            draw.rectangle((a, height - bar, b, height - 1), fill=_BAR)
    draw.rectangle((0, 0, img.width - 1, img.height - 1), outline=(200, 200, 200))
    for k, (interval, colour) in enumerate(marks):
        if interval is None:
            continue
        a, b = int(interval[0] * scale), int((interval[1] + 1) * scale) - 1
        at = 1 + 2 * k
        if vertical:
            draw.line((height - 1 - at, a, height - 1 - at, b), fill=colour, width=2)
        else:
            draw.line((a, at, b, at), fill=colour, width=2)
    return img


def render(erf_map: Any, report: Any, title: str = "") -> bytes:
    """PNG bytes of an ERF map ([H, W]: heatmap and marginals; [L]: profile) with report's windows drawn over it."""
    import numpy as np
    from PIL import Image, ImageDraw

    m = np.nan_to_num(np.asarray(erf_map, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if m.ndim not in (1, 2):
        raise ValueError(f"render draws 1-D and 2-D maps, got {m.ndim}-D")
    region = report.input_region
    i95, i50 = report.mass_interval_95, report.mass_interval_50
    lines = [
        f"blue: theoretical RF {'x'.join(map(str, report.receptive_field)) or '?'} (clipped to the image)",
        "red: 95% of the mass, orange: 50% (per-axis windows of the marginals)",
        "ERF std " + "x".join("-" if s is None else f"{s:.3g}" for s in report.erf_std) + " px",
    ]
    if m.ndim == 1:
        n = m.size
        scale = max(1, (2 * PANEL) // n) if n <= 2 * PANEL else 2 * PANEL / n
        length = max(1, int(n * scale))
        bars = _profile(m, length, scale, 2 * PROFILE, False, [])
        panel = Image.new("RGB", (length, 2 * PROFILE + 10), "white")
        panel.paste(bars, (0, 10))
        draw = ImageDraw.Draw(panel)
        for k, (interval, colour) in enumerate([(_clip(region[0], n) if region else None, _BLUE),
                                                (i95[0] if i95 else None, _RED), (i50[0] if i50 else None, _ORANGE)]):
            if interval is not None:
                a, b = int(interval[0] * scale), int((interval[1] + 1) * scale) - 1
                draw.line((a, 1 + 3 * k, b, 1 + 3 * k), fill=colour, width=2)
                if k == 0:
                    draw.line((a, 0, a, 2 * PROFILE + 9), fill=colour)
                    draw.line((b, 0, b, 2 * PROFILE + 9), fill=colour)
        body = Image.new("RGB", (length, panel.height + LABEL_H), "white")
        body.paste(panel, (0, 0))
        end = f"{n - 1}"
        ImageDraw.Draw(body).text((0, panel.height + 1), "0", fill="black")
        ImageDraw.Draw(body).text((max(0, length - 7 * len(end)), panel.height + 1), end, fill="black")
    else:
        h, w = m.shape
        sy, sx, size_h, size_w = _fit(h, w)
        heat = Image.fromarray(_colour(m), "RGB").resize((size_w, size_h), Image.Resampling.NEAREST)
        draw = ImageDraw.Draw(heat)
        boxes = [([_clip(region[0], h), _clip(region[1], w)] if region else None, _BLUE)]
        boxes += [(i95, _RED), (i50, _ORANGE)]
        for box, colour in boxes:
            if box is None or None in box:
                continue
            (r0, r1), (c0, c1) = box
            draw.rectangle((int(c0 * sx), int(r0 * sy), int((c1 + 1) * sx) - 1, int((r1 + 1) * sy) - 1), outline=colour)
        rows = _profile(m.sum(axis=1), size_h, sy, PROFILE, True, [(i95[0] if i95 else None, _RED), (i50[0] if i50 else None, _ORANGE)])
        cols = _profile(m.sum(axis=0), size_w, sx, PROFILE, False, [(i95[1] if i95 else None, _RED), (i50[1] if i50 else None, _ORANGE)])
        body = Image.new("RGB", (size_w + GAP + PROFILE, size_h + GAP + PROFILE), "white")
        body.paste(heat, (0, 0))
        body.paste(rows, (size_w + GAP, 0))
        body.paste(cols, (0, size_h + GAP))
        ImageDraw.Draw(body).rectangle((0, 0, size_w - 1, size_h - 1), outline=(150, 150, 150))
    top = LABEL_H + GAP if title else GAP
    width = max(body.width, 7 * max(len(line) for line in lines + [title])) + 2 * GAP
    canvas = Image.new("RGB", (width, top + body.height + GAP + LABEL_H * len(lines) + GAP), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((GAP, GAP // 2), title, fill="black")
    canvas.paste(body, (GAP, top))
    y = top + body.height + GAP
    for line in lines:
        draw.text((GAP, y), line, fill="black")
        y += LABEL_H
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", optimize=True)
    return buf.getvalue()
