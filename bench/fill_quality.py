"""Fill quality against ground truth: every hole fill on synthetic scenes whose true right view is
known everywhere (``stereocrafter.testing.fillscenes``), each fill given the scene's TRUE disparity.

Per scene and fill, the left view is forward-splatted with its true disparity (the pipeline's own
splat, ``stereo.splatting``; the right view's disparity splatted with it), the holes (occlusion >=
0.5) are filled, and the result is merged into the holes grown by 1 px and feathered over 2 (the
``instant`` preset's ``stereo.merge`` rule). Printed per fill:

- ``PSNR``/``SSIM`` inside the holes, against the true right view (SSIM: an 11 px Gaussian window,
  sigma 1.5, the map averaged over the hole pixels);
- the same on the band of 3 px around the holes (where the merge blends);
- ``dT``: the mean absolute frame-to-frame change inside the holes (pixels that are holes in both
  frames, [0, 1] units), beside the truth's own ``dT`` at the same pixels and their ratio
  (``flicker``): a fill that flickers has a larger one.

Fills: ``background`` (``stereo.fill``, steps 1-2: the background side, mirrored), ``background +
past`` (with what earlier frames showed), ``background + memory`` (and what the later frames of
its chunk of 16 show: the ``instant`` preset's fill, run in chunks as the stage runs it), and two naive
baselines: ``foreground copy`` (the boundary pixel of the nearer side, smeared across) and
``blur`` (a normalised Gaussian blur of the known pixels of both sides, sigma 6 px, grown until
every hole is covered). A learned inpainter on random weights has no quality to measure: MI-GAN
(``clean``) gets a figure only from its published weights, which this machine cannot download.

    python -m bench.fill_quality           # 5 scenes of 24 frames at 192x96 (about 10 s on 2 cores)
    python -m bench.fill_quality --smoke   # 6 frames a scene (too few for the memory: no gate)
    python -m bench.fill_quality --check   # exit 1 unless the fill beats both baselines on hole PSNR
                                           # in every scene and its dT is at most the truth's + 0.02
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
from collections.abc import Callable

import torch
import torch.nn.functional as F

from stereocrafter.stages.frames import FRAME_CHUNK
from stereocrafter.stereo import fill
from stereocrafter.stereo.holes import nearest_known
from stereocrafter.stereo.merge import hole_weights, merge_right_view
from stereocrafter.stereo.splatting import forward_splat
from stereocrafter.testing.fillscenes import Scene, render, scenes

DILATE, FEATHER = 1, 2  # the instant preset's merge
Fill = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def foreground_copy(view: torch.Tensor, holes: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
    """Baseline: every hole pixel takes the boundary pixel of the NEARER side (the wrong one)."""
    left, right = nearest_known(~holes, dtype=torch.int32)
    w = holes.shape[-1]
    d_left = torch.gather(disparity, -1, left.clamp(0, w - 1))
    d_right = torch.gather(disparity, -1, right.clamp(0, w - 1))
    use_right = (right < w) & ((left < 0) | (d_right > d_left))
    pick = torch.where(use_right, right, left).clamp(0, w - 1)
    return torch.where(holes, torch.gather(view, -1, pick.expand_as(view)), view)


def blur(
    view: torch.Tensor, holes: torch.Tensor, disparity: torch.Tensor, sigma: float = 6.0
) -> torch.Tensor:
    """Baseline: a normalised Gaussian blur of the known pixels (both sides), sigma doubled until
    every hole pixel has weight."""
    known = (~holes).float()
    out = view.clone()
    todo = holes.clone()
    while bool(todo.any()) and sigma < 4 * max(view.shape[-2:]):
        radius = int(3 * sigma)
        taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / sigma) ** 2)
        taps = taps / taps.sum()

        def smooth(x: torch.Tensor, taps: torch.Tensor = taps, radius: int = radius) -> torch.Tensor:
            c = x.shape[1]
            row = taps.view(1, 1, 1, -1).expand(c, 1, 1, -1)
            x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), row, groups=c)
            return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"),
                            taps.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)  # fmt: skip

        weight = smooth(known)
        value = smooth(view * known) / weight.clamp(min=1e-8)
        ready = todo & (weight > 1e-4)
        out = torch.where(ready, value, out)
        todo &= ~ready
        sigma *= 2
    return out


def background(view: torch.Tensor, holes: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
    return fill.fill(view, holes, disparity)


def _in_chunks(view: torch.Tensor, holes: torch.Tensor, disparity: torch.Tensor, ahead: bool) -> torch.Tensor:
    """As the stage runs it: chunks of ``FRAME_CHUNK`` frames, one memory for the clip."""
    memory = fill.BackgroundMemory()
    parts = [
        fill.fill(view[i : i + FRAME_CHUNK], holes[i : i + FRAME_CHUNK], disparity[i : i + FRAME_CHUNK],
                  memory, ahead=ahead)
        for i in range(0, view.shape[0], FRAME_CHUNK)
    ]  # fmt: skip
    return torch.cat(parts)


def background_past(view: torch.Tensor, holes: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
    return _in_chunks(view, holes, disparity, ahead=False)


def background_memory(view: torch.Tensor, holes: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
    return _in_chunks(view, holes, disparity, ahead=True)


FILLS: dict[str, Fill] = {
    "foreground copy": foreground_copy,
    "blur": blur,
    "background": background,
    "background + past": background_past,
    "background + memory": background_memory,
}


def _gauss_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    taps = torch.exp(-0.5 * ((torch.arange(size, dtype=torch.float32) - size // 2) / sigma) ** 2)
    taps = taps / taps.sum()
    return torch.outer(taps, taps)


def ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(t, 3, h, w) in [0, 1] -> (t, 1, h, w): SSIM per pixel, averaged over the channels."""
    c = a.shape[1]
    window = _gauss_window().view(1, 1, 11, 11).expand(c, 1, 11, 11)

    def mean(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (5, 5, 5, 5), mode="replicate"), window, groups=c)

    mu_a, mu_b = mean(a), mean(b)
    var_a, var_b = mean(a * a) - mu_a**2, mean(b * b) - mu_b**2
    cov = mean(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.mean(1, keepdim=True)


def psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    m = mask.expand_as(a)
    mse = float(((a - b)[m] ** 2).mean()) if bool(m.any()) else 0.0
    return 10 * math.log10(1.0 / max(mse, 1e-10))


def evaluate(scene: Scene, frames: int) -> dict[str, dict[str, float]]:
    rendered = [render(scene, t) for t in range(frames)]
    left = torch.stack([r["left"] for r in rendered])
    disparity = torch.stack([r["disparity"] for r in rendered])
    truth = torch.stack([r["right"] for r in rendered])
    splat, occlusion = forward_splat(torch.cat([left, disparity], 1), disparity)
    warped, right_disp = splat[:, :3].clamp(0, 1), splat[:, 3:]
    holes = occlusion >= 0.5
    weight = hole_weights(occlusion, DILATE, FEATHER)
    grown = F.max_pool2d(holes.float(), 7, stride=1, padding=3) > 0
    band = grown & ~holes
    both = holes[1:] & holes[:-1]
    truth_dt = float((truth[1:] - truth[:-1]).abs().mean(1, keepdim=True)[both].mean())
    rows = {}
    for name, fill_fn in FILLS.items():
        filled = fill_fn(warped, holes, right_disp)
        out = merge_right_view(warped, filled, weight).clamp(0, 1)
        s = ssim_map(out, truth)
        rows[name] = {
            "psnr": psnr(out, truth, holes),
            "ssim": float(s[holes].mean()),
            "band_psnr": psnr(out, truth, band),
            "band_ssim": float(s[band].mean()),
            "dt": float((out[1:] - out[:-1]).abs().mean(1, keepdim=True)[both].mean()),
            "truth_dt": truth_dt,
            "hole_share": float(holes.float().mean()),
        }
    return rows


def _flicker(row: dict[str, float]) -> str:
    """dT over the truth's: above 1, the fill changes from frame to frame more than the scene does."""
    return f"{row['dt'] / row['truth_dt']:.2f}x" if row["truth_dt"] > 1e-6 else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}"
    )
    print("MI-GAN (clean): no figure: a learned model on tiny random weights has no quality to measure")
    failures = []
    header = f"{'scene':38s} {'fill':20s} {'PSNR':>6s} {'SSIM':>6s} {'bandPSNR':>8s} {'bandSSIM':>8s}"
    header += f" {'dT':>6s} {'truth dT':>8s} {'flicker':>7s}"
    print(header)
    for scene in scenes():
        frames = 6 if args.smoke else scene.frames
        rows = evaluate(scene, frames)
        for name, r in rows.items():
            print(f"{scene.name:38s} {name:20s} {r['psnr']:6.2f} {r['ssim']:6.3f} {r['band_psnr']:8.2f} "
                  f"{r['band_ssim']:8.3f} {r['dt']:6.4f} {r['truth_dt']:8.4f} {_flicker(r):7s}")  # fmt: skip
        ours = rows["background + memory"]
        print(f"{'':38s} holes: {100 * ours['hole_share']:.1f}% of the pixels; memory gains "
              f"{ours['psnr'] - rows['background']['psnr']:+.2f} dB")  # fmt: skip
        best_baseline = max(rows["foreground copy"]["psnr"], rows["blur"]["psnr"])
        if ours["psnr"] <= best_baseline:
            failures.append(f"{scene.name}: {ours['psnr']:.2f} dB, a baseline {best_baseline:.2f}")
        if ours["dt"] > ours["truth_dt"] + 0.02:
            failures.append(f"{scene.name}: dT {ours['dt']:.4f} > truth {ours['truth_dt']:.4f} + 0.02")
    if args.check and failures:
        print("CHECK FAILED: " + "; ".join(failures))
        return 1
    if args.check:
        print("check held: the fill beats both baselines on hole PSNR in every scene; dT within truth + 0.02")
    return 0


if __name__ == "__main__":
    sys.exit(main())
