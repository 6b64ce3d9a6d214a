"""``winograd``: 3x3 and 2x2 stride-1 convolutions by Winograd minimal filtering F(m x m, r x r).

Each ``m x m`` output tile comes from an ``n x n`` input tile (``n = m + r - 1``) with
``n^2`` multiplications per channel pair instead of ``r^2 m^2`` (Lavin & Gray 2016): 2.25x
fewer for F(2,3), 4x for F(4,3), 5.06x for F(6,3).  The three variants are named by their
3x3 tiles and keep the tile size ``n`` for 2x2 kernels: F(3,2), F(5,2), F(7,2), 2.25x,
2.78x and 3.06x fewer (the sub-pixel phases of 4x4/2 transposed convolutions)::

    out_tile[o] = AT ( sum_c  U[:, :, c, o] * V[:, :, c] ) AT^T
    U = G w[o, c] G^T     (weights, n x n)      V = BT d_c BT^T     (input tile, n x n)

so for every one of the ``n^2`` transform points the sum over channels is a GEMM:
``M[p] (tiles, O) = V[p] (tiles, C) @ U[p] (C, O)``, per group.

Layout (after the prototypes in PERFORMANCE.md): the input is copied channels-last with
its zero padding, a chunk of images at a time; tiles are processed in blocks so V and M
stay in cache, though no smaller than U, which every block streams through its GEMMs.
Each thread takes whole blocks -- input transform, GEMMs on single-threaded BLAS, output
transform (:mod:`npconv.parallel`) -- of its share of the tiles or, where V is smaller
than U (few tiles, many channels), of the output channels.  The transforms are Numba
kernels vectorised over channels.  Transformed weights are cached (:mod:`.weight_cache`).

Transforms come from :mod:`.winograd_transforms` (Cook-Toom, checked exactly).  Accuracy
falls with m: see the README's table of float32 errors against a float64 reference.
"""

import functools
import math

import numpy as np
from numba import njit

from ..config import get_num_threads, get_precision, get_workspace_limit, precision_allows
from ..parallel import run_pieces, single_threaded_blas, split, threads_for
from . import tile_transform, vector_copy
from .base import COPY_BYTES_PER_SECOND, Algorithm, gemm_seconds, scratch_limit
from .register_block import lanes
from .weight_cache import WEIGHT_CACHE
from .winograd_transforms import transforms

# V and M blocks of about this many bytes stay in the L2/L3 caches ...
BLOCK_BYTES = 4 * 2**20
# ... unless U is larger: every block streams all of U through the GEMMs, so a block's V and
# M are made up to this share of U's bytes, within half the scratch (512-channel layers at
# 28x28, batch 8: 55 ms with 28-tile blocks, 45 with 128).
WEIGHT_SHARE = 1.0
# Input and output transform kernels: seconds per transformed value on one core (measured
# when their sums went through memory; in registers now 0.3-0.5 ns, most of it moving the
# values, but the suite's choices are right with this: Winograd's layers, and im2col's on
# ResNet-50's 7x7 layer at batch 1, where Winograd ran 1.5x slower).
TRANSFORM_SECONDS_PER_VALUE = 0.9e-9
# NumPy's cost per matrix of a batched matmul, which dominates with tiny groups (measured).
SECONDS_PER_MATMUL = 20e-9
# The transforms' cost per group, tile and transform row on one core: they loop over each
# group's channels, so with few channels per group (ResNeXt's 4 or 8) this dominates
# (fitted to 8x256x28x28 layers with 4 to 64 groups).
TRANSFORM_SECONDS_PER_GROUP_ROW = 24e-9


def coefficients(mat, dtype):
    """A transform matrix as a tuple of rows of ``dtype`` scalars: its sizes are then known to
    the compiler, which unrolls :func:`.tile_transform.transform`'s sums for them."""
    return tuple(tuple(dtype.type(value) for value in row) for row in mat)


@functools.lru_cache(maxsize=None)
def transform_coefficients(m, r, dtype):
    """:func:`coefficients` of F(m, r)'s ``AT`` and ``BT``, and of ``AT^T`` (the weight gradient
    transforms output-gradient tiles with it), made once per variant and dtype: per call they
    took 25-75 us, 5% of a batch-1 layer's."""
    at, _, bt = transforms(m, r)
    return tuple(coefficients(mat, dtype) for mat in (at, bt, at.T))


@njit(cache=True, nogil=True)
def to_channels_last(x, xp, n0, top, left, first, stop):
    """xp[b, top + h, left + w, c] = x[n0 + b, c, h, w] for the rows ``first <= b * H + h < stop``.

    x: (N, C, H, W); xp: (nb, Hp, Wp, Cp), Cp >= C (channels past C left as they are).  Each
    row goes in blocks of a vector's lanes of channels and columns, transposed in registers
    (:func:`.vector_copy.transpose`; a scalar copy in blocks of 32 took 1.2-1.6x as long,
    8x128x16x16 to 64x224x224 on one core).
    """
    channels, height, width = x.shape[1], x.shape[2], x.shape[3]
    depth = xp.shape[3]
    plane, row = height * width, xp.shape[2] * depth
    step = lanes(x.itemsize)
    src, dst = x.ravel(), xp.ravel()
    for job in range(first, stop):
        b, h = job // height, job % height
        source = (n0 + b) * channels * plane + h * width
        target = (b * xp.shape[1] + top + h) * row + left * depth
        for c0 in range(0, channels, step):
            for w0 in range(0, width, step):
                vector_copy.transpose(dst, target + w0 * depth + c0, depth, src, source + c0 * plane + w0, plane,
                                      min(step, channels - c0), min(step, width - w0))


def copy_channels_last(x, xp, n0, nb, top, left):
    """Images ``n0 .. n0 + nb`` of x (N, C, H, W) into xp (nb, Hp, Wp, C) at ``(top, left)``,
    rows shared among the threads when the copy is large enough."""
    seconds = 2 * nb * x[0].nbytes / COPY_BYTES_PER_SECOND
    run_pieces(lambda span: to_channels_last(x, xp, n0, top, left, *span), split(nb * x.shape[2], threads_for(seconds)),
               seconds=seconds)


@njit(cache=True, nogil=True)
def input_transform(xp, bt, v, t0, count, first, tiles_h, tiles_w, m, top, left):
    """V[p, g, first + t - t0, c] = (BT d BT^T)[p] for tiles t0 .. t0 + count of the padded chunk.

    xp: (nb, Hp, Wp, C) channels-last zero-padded images; bt: (n, k) as :func:`coefficients`,
    read on the k x k patches ``d`` at every m-th row and column from ``(top, left)``;
    v: (n*n, G, T, Cg).
    Vectorised over channels.  (The forward reads n x n input tiles; the weight gradient also
    m x m output-gradient tiles.)
    """
    n = len(bt)
    channels = xp.shape[3]
    groups, places, cg = v.shape[1], v.shape[2], v.shape[3]
    row, plane = xp.shape[2] * channels, xp.shape[1] * xp.shape[2] * channels
    point = groups * places * cg  # V's stride between transform points
    step = lanes(xp.itemsize)
    src, dst = xp.ravel(), v.ravel()
    for tb in range(count):
        t = t0 + tb
        img, i, j = t // (tiles_h * tiles_w), (t // tiles_w) % tiles_h, t % tiles_w
        corner = img * plane + (top + i * m) * row + (left + j * m) * channels
        for g in range(groups):
            for c0 in range(0, cg, step):
                tile_transform.transform(bt, dst, (g * places + first + tb) * cg + c0, n * point, point,
                                         src, corner + g * cg + c0, row, channels, min(step, cg - c0))


@njit(cache=True, nogil=True)
def output_transform(mm, at, out, n0, t0, tiles_h, tiles_w, o0, row_step, row0):
    """Write AT M AT^T of tiles t0 .. into out (N, O, OH, OW), clipped at its edges.

    mm: (S, n*n, G, T, k) transform-domain products of each group's outputs o0 .. o0 + k,
    for S column phases; at: (m, n) as :func:`coefficients`; tile t counts from image n0.
    Value ``(a, b)`` of tile ``(i, j)`` in column phase ``s`` goes to row ``row0 + row_step *
    (i*m + a)``, column ``S * (j*m + b) + s`` (a convolution's tiles: S = 1 and row_step = 1;
    :mod:`npconv.phase_winograd`'s sub-pixel phases: S = 2, row_step = 2, row0 the row phase).
    Vectorised over channels.  The tiles of one tile row are gathered channels-last, ``(m,
    S*width, G*k)``, their column phases interleaved, then copied out in blocks of a vector's
    lanes of channels and columns, transposed in registers (:func:`.vector_copy.transpose`;
    scalar copies in blocks of 16 took 0.3 ns a value, 2-3x as long, on F(3, 2) and F(2, 3)
    layers at batch 8): writing each tile's values straight into their channels' planes, one
    store per plane, ran 1.3 to 3 times slower on 56x56 to 224x224.  (No defaults for
    ``row_step`` and ``row0``: compiled with them omitted, this ran 1.9x slower.)
    """
    m, n = len(at), len(at[0])
    phases, groups, count, og = mm.shape[0], mm.shape[2], mm.shape[3], mm.shape[4]
    channels, per_group = groups * og, out.shape[1] // groups
    out_h, out_w = out.shape[2], out.shape[3]
    src, dst = mm.ravel(), out.ravel()
    width = min(tiles_w, count) * m * phases
    rows = np.empty(m * width * channels, dtype=mm.dtype)  # (AT M AT^T)[a, column, o] of a tile row
    point = groups * count * og  # M's stride between transform points
    step = lanes(out.itemsize)  # the transposed blocks' side
    tb = 0
    while tb < count:
        t = t0 + tb
        img, i, j = n0 + t // (tiles_h * tiles_w), (t // tiles_w) % tiles_h, t % tiles_w
        run = min(count - tb, tiles_w - j)  # tiles of this tile row in the block
        for s in range(phases):
            for r in range(run):
                for g in range(groups):
                    for c0 in range(0, og, step):
                        tile_transform.transform(at, rows, (r * m * phases + s) * channels + g * og + c0,
                                                 width * channels, phases * channels, src,
                                                 s * n * n * point + (g * count + tb + r) * og + c0, n * point, point,
                                                 min(step, og - c0))
        top = row0 + row_step * i * m
        height = min(m, (out_h - top + row_step - 1) // row_step)
        columns = min(run * m * phases, out_w - j * m * phases)
        for g in range(groups):
            for c0 in range(0, og, step):
                line = ((img * out.shape[1] + g * per_group + o0 + c0) * out_h + top) * out_w + j * m * phases
                for a in range(height):
                    for w0 in range(0, columns, step):
                        vector_copy.transpose(dst, line + a * row_step * out_w + w0, out_h * out_w, rows,
                                              (a * width + w0) * channels + g * og + c0, channels,
                                              min(step, columns - w0), min(step, og - c0))
        tb += run


def transform_weight(weight, groups, m):
    """U (n*n, G, Cg, Og) = G w G^T for every (output, input) channel pair, in float64 then cast."""
    out_channels, cg, r = weight.shape[:3]
    _, g_mat, _ = transforms(m, r)
    n = m + r - 1
    u = np.tensordot(g_mat, weight.astype(np.float64), axes=([1], [2]))  # (n, O, Cg, r)
    u = np.tensordot(u, g_mat, axes=([3], [1]))  # (n, O, Cg, n)
    u = u.reshape(n, groups, out_channels // groups, cg, n)  # (n, G, Og, Cg, n)
    u = u.transpose(0, 4, 1, 3, 2)  # (n, n, G, Cg, Og)
    return np.ascontiguousarray(u, dtype=weight.dtype).reshape(n * n, groups, cg, out_channels // groups)


def _tiles(geom, m):
    return tuple(-(-o // m) for o in geom.out_size)


def _splits_channels(geom, tiles):
    """Whether the threads share out each group's output channels (each then transforms every
    tile, and streams its share of U) rather than the tiles: where V, ``tiles`` of them, is
    smaller than U."""
    return tiles * geom.in_channels < geom.in_per_group * geom.out_channels


class Winograd(Algorithm):
    """F(m x m, 3 x 3) for one fixed m (``winograd2``, ``winograd4``, ``winograd6``), and on
    the same ``n = m + 2`` tiles F((m+1) x (m+1), 2 x 2)."""

    def __init__(self, m, accuracy):
        self.m = m
        self.tile = m + 2
        self.name = f"winograd{m}"
        self.accuracy = accuracy

    def sizes(self, geom):
        """``(m, r)`` for ``geom``: its output tile's size on this variant's tiles, and its kernel's."""
        r = geom.kernel[0]
        return self.tile - r + 1, r

    def why_unsupported(self, geom):
        if geom.rank != 2:
            return f"it handles 2 spatial dims, got {geom.rank}"
        if geom.kernel not in ((3, 3), (2, 2)):
            return f"it needs a 3x3 or 2x2 kernel, got {geom.kernel}"
        if geom.stride != (1, 1):
            return f"it needs stride 1, got {geom.stride}"
        if geom.dilation != (1, 1):
            return f"it needs dilation 1, got {geom.dilation}"
        return None

    def _plan(self, geom):
        """``(images per chunk, tiles per block)``: the padded chunk within half of
        :func:`.base.scratch_limit`; a block of BLOCK_BYTES of V and M, or larger, up to U's
        size, as far as every thread's block fits the other half of the larger of that limit
        and U (within the workspace cap): a layer whose transformed weights outweigh its output
        holds that much memory anyway, and each of its blocks streams all of U."""
        (m, r), n, item = self.sizes(geom), self.tile, geom.dtype.itemsize
        tiles_h, tiles_w = _tiles(geom, m)
        padded_image = (tiles_h * m + r - 1) * (tiles_w * m + r - 1) * geom.in_channels * item
        images = max(1, min(geom.batch, scratch_limit(geom) // 2 // padded_image))
        weight = n * n * geom.in_per_group * geom.out_channels * item
        scratch = max(scratch_limit(geom), min(weight, get_workspace_limit()))
        share = min(WEIGHT_SHARE * weight, scratch // 2 // get_num_threads())
        per_tile = n * n * (geom.in_channels + self._block_outputs(geom, images)) * item  # in a thread's block
        tiles = max(BLOCK_BYTES // (n * n * (geom.in_channels + geom.out_channels) * item), int(share) // per_tile)
        return images, max(1, min(images * tiles_h * tiles_w, tiles))

    def _block_outputs(self, geom, images):
        """M's values per tile in a thread's block: every output channel, or where the threads
        share them out (:func:`_splits_channels`), a thread's share."""
        if _splits_channels(geom, images * math.prod(_tiles(geom, self.sizes(geom)[0]))):
            return geom.groups * -(-geom.out_per_group // get_num_threads())
        return geom.out_channels

    def workspace_bytes(self, geom):
        """The padded chunk, every thread's block of V and M, and U."""
        (m, r), n, item = self.sizes(geom), self.tile, geom.dtype.itemsize
        tiles_h, tiles_w = _tiles(geom, m)
        images, tiles = self._plan(geom)
        padded = images * (tiles_h * m + r - 1) * (tiles_w * m + r - 1) * geom.in_channels * item
        per_tile = n * n * (geom.in_channels + self._block_outputs(geom, images)) * item
        blocks = get_num_threads() * tiles * per_tile
        weights = n * n * geom.in_per_group * geom.out_channels * item
        return padded + blocks + weights

    def estimated_seconds(self, geom):
        """GEMMs, plus per tile block U streamed once and NumPy's per-matrix cost, plus the
        transforms (per value, and per group and row), plus the input's copy (read and written,
        on all threads).  With the output channels shared out, every thread transforms every tile."""
        (m, _), n, item = self.sizes(geom), self.tile, geom.dtype.itemsize
        images, block = self._plan(geom)
        tiles = geom.batch * math.prod(_tiles(geom, m))
        threads = get_num_threads()
        outputs = geom.out_per_group
        splits = _splits_channels(geom, images * math.prod(_tiles(geom, m)))
        if splits:
            outputs = -(-outputs // threads)  # each thread: every tile, its share of U
            blocks = threads * -(-tiles // block)
        else:
            block = max(1, min(block, -(-tiles // threads)))
            blocks = -(-tiles // block)
        gemm_flops = 2 * n * n * tiles * geom.in_per_group * geom.out_channels
        share = n * n * geom.in_per_group * outputs * geom.groups * item  # U's bytes a block streams
        transformed = tiles * n * n * (geom.in_channels * (threads if splits else 1) + geom.out_channels)
        return (gemm_seconds(gemm_flops, block, outputs, geom.in_per_group)
                + blocks * (share / COPY_BYTES_PER_SECOND + n * n * geom.groups * SECONDS_PER_MATMUL)
                + (transformed * TRANSFORM_SECONDS_PER_VALUE
                   + tiles * geom.groups * n * (n + m) * TRANSFORM_SECONDS_PER_GROUP_ROW) / threads
                + 2 * geom.batch * geom.in_channels * math.prod(geom.in_size) * item / COPY_BYTES_PER_SECOND / threads)

    def run(self, x, weight, geom, out):
        (m, r), n = self.sizes(geom), self.tile
        at, bt, _ = transform_coefficients(m, r, geom.dtype)
        u = WEIGHT_CACHE.get(weight, (self.name, geom.groups), lambda: transform_weight(weight, geom.groups, m))
        (top, _), (left, _) = geom.padding
        tiles_h, tiles_w = _tiles(geom, m)
        images, block = self._plan(geom)
        groups, cg, og = geom.groups, geom.in_per_group, geom.out_per_group
        xp = np.zeros((images, tiles_h * m + r - 1, tiles_w * m + r - 1, geom.in_channels), dtype=geom.dtype)
        seconds = self.estimated_seconds(geom)
        for n0 in range(0, geom.batch, images):
            nb = min(images, geom.batch - n0)
            copy_channels_last(x, xp, n0, nb, top, left)  # inside their zero border (N, Hp, Wp, C)

            def work(piece, n0=n0):
                (first, stop), (o0, o1) = piece
                size = min(block, stop - first)  # buffers no larger than the piece needs
                v = np.empty(n * n * groups * size * cg, dtype=geom.dtype)
                mm = np.empty(n * n * groups * size * (o1 - o0), dtype=geom.dtype)
                for t0 in range(first, stop, size):
                    count = min(size, stop - t0)
                    v_block = v[: n * n * groups * count * cg].reshape(n * n, groups, count, cg)  # (n^2, G, T, Cg)
                    m_block = mm[: n * n * groups * count * (o1 - o0)].reshape(n * n, groups, count, o1 - o0)
                    input_transform(xp, bt, v_block, t0, count, 0, tiles_h, tiles_w, m, 0, 0)
                    np.matmul(v_block, u[..., o0:o1], out=m_block)  # (n^2, G, T, o1 - o0)
                    output_transform(m_block.reshape(1, *m_block.shape), at, out, n0, t0, tiles_h, tiles_w, o0, 1, 0)

            tiles, parts = nb * tiles_h * tiles_w, threads_for(seconds)
            if _splits_channels(geom, tiles):
                pieces = [((0, tiles), span) for span in split(og, parts)]  # each thread streams its share of U
            else:
                pieces = [(span, (0, og)) for span in split(tiles, parts)]
            run_pieces(work, pieces, seconds=seconds)


    def _gradient_images(self, geom):
        """Images per chunk of :meth:`weight_gradient`: their transformed input and output
        gradient (``n^2 (C_in + C_out)`` values per tile) within :func:`.base.scratch_limit`."""
        n, tiles = self.tile, math.prod(_tiles(geom, self.sizes(geom)[0]))
        image_bytes = tiles * n * n * (geom.in_channels + geom.out_channels) * geom.dtype.itemsize
        return max(1, min(geom.batch, scratch_limit(geom) // image_bytes))

    def weight_gradient_seconds(self, geom):
        """Twice the forward's cost (it transforms two tensors tile by tile and runs the same
        GEMM flops with the tiles as their inner dim: measured about twice the forward on
        ResNet-50's 3x3 layers at batch 8), plus adding each chunk's ``(n^2, C_out, Cg)``
        products into the sum: far more than the weight when chunks are few tiles of many
        channels.  At batch 1 it ran up to 1.7x slower than this predicts."""
        n, chunks = self.tile, -(-geom.batch // self._gradient_images(geom))
        products = n * n * geom.in_per_group * geom.out_channels * geom.dtype.itemsize
        return 2 * self.estimated_seconds(geom) + 3 * chunks * products / COPY_BYTES_PER_SECOND

    def weight_gradient(self, x, grad, geom):
        """The weight gradient (C_out, Cg, r, r): the adjoint of the forward's map from U.

        Per tile the forward computes ``Y = AT (U . V) AT^T`` with ``U = G w G^T``, so
        ``dL/dU = sum_tiles (AT^T dY AT) . V`` -- per transform point a GEMM over the tiles,
        ``Z[p] (Og, Cg) = M'[p]^T (Og, T) @ V[p] (T, Cg)`` per group -- and ``dL/dw = G^T Z G``.
        The output-gradient tiles (m x m, zero past the output's edge) are transformed by the
        input transform's kernel with ``AT^T`` (n x m).  Per chunk of images the threads first
        share the tiles' transforms, then the transform points' GEMMs (each over all the
        chunk's tiles, so no thread keeps a sum of its own).
        ``x`` (N, C_in, H, W) and ``grad`` (N, C_out, OH, OW): C-contiguous, ``geom.dtype``.
        """
        (m, r), n = self.sizes(geom), self.tile
        g_mat = transforms(m, r)[1]
        _, bt, a_mat = transform_coefficients(m, r, geom.dtype)
        (top, _), (left, _) = geom.padding
        tiles_h, tiles_w = _tiles(geom, m)
        images = self._gradient_images(geom)
        groups, cg, og = geom.groups, geom.in_per_group, geom.out_per_group
        xp = np.zeros((images, tiles_h * m + r - 1, tiles_w * m + r - 1, geom.in_channels), dtype=geom.dtype)
        gp = np.zeros((images, tiles_h * m, tiles_w * m, geom.out_channels), dtype=geom.dtype)
        v = np.empty((n * n, groups, images * tiles_h * tiles_w, cg), dtype=geom.dtype)  # (n^2, G, T, Cg)
        mg = np.empty((n * n, groups, images * tiles_h * tiles_w, og), dtype=geom.dtype)  # (n^2, G, T, Og)
        z = np.empty((n * n, groups, og, cg), dtype=geom.dtype)  # dL/dU
        products = np.empty_like(z) if images < geom.batch else None  # later chunks' GEMMs, then added
        threads, seconds = get_num_threads(), self.weight_gradient_seconds(geom)
        for n0 in range(0, geom.batch, images):
            nb = min(images, geom.batch - n0)
            tiles = nb * tiles_h * tiles_w
            # the chunk's images and output gradients, channels-last, in their zero borders
            copy_channels_last(x, xp, n0, nb, top, left)
            copy_channels_last(grad, gp, n0, nb, 0, 0)

            def transform(span):
                count = span[1] - span[0]
                input_transform(xp, bt, v, span[0], count, span[0], tiles_h, tiles_w, m, 0, 0)
                input_transform(gp, a_mat, mg, span[0], count, span[0], tiles_h, tiles_w, m, 0, 0)

            def multiply(span, tiles=tiles, first=n0 == 0):
                points = slice(*span)
                target = z[points] if first else products[points]  # (p, G, Og, Cg)
                np.matmul(mg[points, :, :tiles].swapaxes(2, 3), v[points, :, :tiles], out=target)
                if not first:
                    z[points] += target

            run_pieces(transform, split(tiles, threads), seconds=seconds)
            run_pieces(multiply, split(n * n, threads), seconds=seconds)
        g_t = np.ascontiguousarray(g_mat.T.astype(geom.dtype))  # (r, n)
        with single_threaded_blas():
            gz = (g_t @ z.reshape(n, -1)).reshape(r, n, -1).transpose(1, 0, 2).reshape(n, -1)  # G^T Z, axes swapped
            gw = (g_t @ gz).reshape(r, r, geom.out_channels, cg)  # (G^T Z G)^T: (j, i, C_out, Cg)
        return np.ascontiguousarray(gw.transpose(2, 3, 1, 0))  # (C_out, Cg, r, r)


@functools.lru_cache(maxsize=1024)
def _pick(variants, geom, precision, threads, workspace_limit):
    """The variant :meth:`WinogradAuto.pick` runs ``geom`` with: the cheapest by their cost models
    of those ``precision`` allows, remembered per geometry and the settings the models read
    (ranking three variants took 21 us of a 1 ms call)."""
    allowed = [v for v in variants if precision_allows(precision, v.accuracy)] or variants[:1]
    return min(allowed, key=lambda v: v.estimated_seconds(geom))


class WinogradAuto(Algorithm):
    """``winograd``: the variant picked by size among the ones the precision policy allows."""

    name = "winograd"
    accuracy = "high"

    def __init__(self, variants):
        self.variants = variants

    def pick(self, geom):
        return _pick(self.variants, geom, get_precision(), get_num_threads(), get_workspace_limit())

    def why_unsupported(self, geom):
        return self.variants[0].why_unsupported(geom)

    def workspace_bytes(self, geom):
        return self.pick(geom).workspace_bytes(geom)

    def estimated_seconds(self, geom):
        return self.pick(geom).estimated_seconds(geom)

    def run(self, x, weight, geom, out):
        self.pick(geom).run(x, weight, geom, out)

    def weight_gradient_seconds(self, geom):
        return self.pick(geom).weight_gradient_seconds(geom)

    def weight_gradient(self, x, grad, geom):
        return self.pick(geom).weight_gradient(x, grad, geom)
