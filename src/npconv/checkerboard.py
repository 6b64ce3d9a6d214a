"""The checkerboard study: a score for stride-periodic artifacts, and the demo that compares
transposed convolution with resize-convolution (``npconv demo checkerboard``).
"""

import numpy as np

from .dtypes import as_array, result_dtypes
from .geometry import int_tuple


def checkerboard_score(y, stride):
    """The share of ``y``'s variation at the aliasing frequencies of a stride-``stride`` upsampling.

    An upsampling layer with stride ``s`` (a transposed convolution, or a resize by ``s``)
    turns each input frequency into an output frequency within ``1 / (2 s)`` cycles per
    pixel of zero, plus images of it around the multiples of ``1 / s`` -- a pattern with
    period ``s``, the checkerboard.  A good interpolating filter removes the images, so the
    score is the share of the output's spectral energy at frequencies above ``1 / (2 s_i)``
    in some dim ``i``::

        score = sum_{f : exists i, |f_i| > 1 / (2 s_i)} |Y(f)|^2 / sum_f |Y(f)|^2

    where ``Y`` is the DFT over the spatial dims of each ``(n, c)`` map, its (weighted)
    mean subtracted and tapered by a Hann window: the DFT would see the map's edges as a
    jump, and padding leaves its own edges, neither of them a checkerboard; the sums run
    over all maps.  0 for a constant or smooth (band-limited) output, 1 for a pattern of
    period ``s`` alone; stride 1 always scores 0.  The window's own spread needs maps of
    about 16 or more values per dim.

    Args:
        y: ``(N, C, *spatial)``, float.
        stride: an int or one per spatial dim, positive.

    Returns:
        A float in ``[0, 1]``; NaN where ``y`` holds a NaN or an infinity (no spectrum then).
    """
    op = "checkerboard_score"
    y = as_array(op, "y", y)
    result_dtypes(op, y=y)
    if y.ndim < 3 or min(y.shape) < 1:
        raise ValueError(f"{op}: y must be (N, C, *spatial) with at least 3 dims, none of size 0, got shape {y.shape}")
    rank = y.ndim - 2
    stride = int_tuple(op, "stride", stride, rank, 1)
    axes = tuple(range(2, y.ndim))
    window = np.ones(())
    for size in y.shape[2:]:
        window = np.multiply.outer(window, np.hanning(size + 2)[1:-1])  # (*spatial), no zero end points
    y = y.astype(np.float64)
    peak = np.abs(y).max()
    if not np.isfinite(peak):
        return float("nan")
    if peak > 0:  # the score does not depend on scale; squares of values past 1e154 would overflow
        y = y / peak
    mean = (y * window).sum(axis=axes, keepdims=True) / window.sum()  # (N, C, 1, ...)
    power = np.abs(np.fft.fftn((y - mean) * window, axes=axes)) ** 2  # (N, C, *spatial)
    aliasing = np.zeros(y.shape[2:], dtype=bool)
    for dim, (size, s) in enumerate(zip(y.shape[2:], stride)):
        high = np.abs(np.fft.fftfreq(size)) > 1 / (2 * s)
        aliasing |= high.reshape((1,) * dim + (size,) + (1,) * (rank - dim - 1))
    total = power.sum()
    return float(power[..., aliasing].sum() / total) if total > 0 else 0.0


# ---- the demo: ``npconv demo checkerboard``

DEMO_SIZE = 32  # input height and width; the outputs are twice that
DEMO_CHANNELS = 8
DEMO_SEED = 0
CASES = ("transposed 3x3/2", "transposed 4x4/2", "nearest x2 + 3x3", "bilinear x2 + 3x3")
# Positive weights share a mean, as the smoothing kernels a generator learns: what differs
# between the cases is then only how the taps overlap.  Zero-mean weights add a pattern of
# their own to every transposed convolution.
WEIGHTS = {
    "uniform [0, 1)": lambda rng, shape: rng.random(shape),
    "normal (zero mean)": lambda rng, shape: rng.standard_normal(shape),
}


def smooth_input(size=DEMO_SIZE, channels=DEMO_CHANNELS, seed=DEMO_SEED):
    """``(1, channels, size, size)`` float64: per channel, two plane waves of at most 2 cycles across, around 0.5."""
    rng = np.random.default_rng(seed)
    u, v = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")  # (size, size) each
    maps = [
        0.5 + 0.25 * np.sin(2 * np.pi * (a * u + b * v) / size + phase)
        + 0.25 * np.cos(2 * np.pi * (c * u - d * v) / size)
        for (a, b, c, d), phase in zip(rng.integers(0, 3, (channels, 4)), rng.uniform(0, 2 * np.pi, channels))
    ]
    return np.stack(maps)[None]  # (1, channels, size, size)


def demo_outputs(x, weights, seed=DEMO_SEED):
    """Each case's ``(1, 1, 2*size, 2*size)`` upsampling of ``x``, random weights drawn by ``weights(rng, shape)``."""
    from .transpose import conv_transpose2d
    from .upsample import upsample_conv

    rng = np.random.default_rng(seed)
    channels = x.shape[1]
    resize_weight = weights(rng, (1, channels, 3, 3))  # (C_out, C_in, 3, 3), shared by both resizes
    return {
        # 3x3/2: output phases get 2x2, 2x1, 1x2 or 1x1 taps; padding 1 + output_padding 1 doubles the size
        CASES[0]: conv_transpose2d(x, weights(rng, (channels, 1, 3, 3)), stride=2, padding=1, output_padding=1),
        # 4x4/2: every phase gets 2x2 taps
        CASES[1]: conv_transpose2d(x, weights(rng, (channels, 1, 4, 4)), stride=2, padding=1),
        CASES[2]: upsample_conv(x, resize_weight, mode="nearest"),
        CASES[3]: upsample_conv(x, resize_weight, mode="bilinear"),
    }


def run_demo(out=None, print_=print):
    """Print the scores of every case for each kind of weights; with ``out``, draw them to that PNG.

    Returns ``{weights name: {case: score}}``.
    """
    x = smooth_input()
    outputs = {name: demo_outputs(x, draw) for name, draw in WEIGHTS.items()}
    scores = {name: {case: checkerboard_score(y, 2) for case, y in cases.items()} for name, cases in outputs.items()}
    print_(f"checkerboard_score(y, stride=2): share of the output's energy at the stride's aliasing frequencies "
           f"(0: no pattern)\ninput: {DEMO_CHANNELS} channels of smooth {DEMO_SIZE}x{DEMO_SIZE} waves; "
           f"outputs 1 x {2 * DEMO_SIZE}x{2 * DEMO_SIZE}; random weights, seed {DEMO_SEED}")
    print_(f"{'weights':<20}" + "".join(f"{case:>19}" for case in CASES))
    for name, row in scores.items():
        print_(f"{name:<20}" + "".join(f"{row[case]:>19.3f}" for case in CASES))
    print_("A 3x3 kernel at stride 2 overlaps unevenly (output phases get 4, 2 or 1 taps): a checkerboard with any\n"
           "weights. 4x4/2 overlaps evenly, so a pattern comes only from weights whose phases differ (zero-mean\n"
           "random ones). Resizing first, then a stride-1 conv, treats every output position alike: no pattern.")
    if out is not None:
        plot_outputs(x, outputs, scores, out)
        print_(f"wrote {out}")
    return scores


def plot_outputs(x, outputs, scores, path):
    """A PNG grid: per kind of weights a row with the input's first channel and each case's output, scored."""
    from .bench import require_plotting

    figure_class = require_plotting()
    fig = figure_class(figsize=(2.2 * (len(CASES) + 1), 2.4 * len(outputs)), layout="constrained")
    axes = fig.subplots(len(outputs), len(CASES) + 1, squeeze=False)
    for row, (name, cases) in zip(axes, outputs.items()):
        row[0].imshow(x[0, 0], cmap="gray", interpolation="nearest")
        row[0].set_title(f"input (channel 0)\n{DEMO_SIZE}x{DEMO_SIZE}", fontsize=8)
        row[0].set_ylabel(f"weights {name}", fontsize=8)
        for ax, case in zip(row[1:], CASES):
            ax.imshow(cases[case][0, 0], cmap="gray", interpolation="nearest")
            ax.set_title(f"{case}\nscore {scores[name][case]:.3f}", fontsize=8)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("Transposed convolution vs resize-convolution (Odena et al. 2016): checkerboard_score, stride 2",
                 fontsize=9)
    fig.savefig(path, dpi=100)
