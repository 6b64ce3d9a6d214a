"""Register-blocked multiply-adds for the direct kernels, emitted as LLVM IR.

``block(ob)(count, src, src_start, plane, offsets, channels, w, w_start, w_stride, w_channel_stride,
out, out_start, out_stride)`` computes, for ``o < ob`` and ``q < count * lanes(itemsize)``::

    out[out_start + o*out_stride + q] = sum_{c < channels, t < T}
        w[w_start + o*w_stride + c*w_channel_stride + t] * src[src_start + c*plane + offsets[t] + q]

with ``T = offsets.size`` (``src``, ``w`` and ``out`` contiguous 1-d arrays of one dtype, every
index in bounds): ``ob`` outputs of a run of positions, over every input plane and
kernel offset of a group (:mod:`.depthwise`'s flat planes; in its adjoint, ``src`` holds
output gradients, ``out`` input channels' phases and the sum runs over output channels).
``block(ob, gathered=True)`` reads ``w`` through tables instead, its arguments ``w, positions,
first, w_channel_stride, w_offsets`` in place of ``w, w_start, w_stride, w_channel_stride``::

    w[positions[first + o] + c*w_channel_stride + w_offsets[t]]

(:mod:`.implicit_gemm`'s blocks, the roles swapped: ``w`` the input channels last, its ``ob``
positions anywhere in it, ``src`` the weights' output channels).  The
``ob x count`` sums (``count`` from 1 to :func:`vectors`) are 64-byte vectors (16 float32 or 8
float64 lanes) held in registers through the whole sum; each step loads ``count`` input
vectors and broadcasts ``ob`` weights into ``ob * count`` fused multiply-adds, and ``out`` is
written once.  Runs shorter than the widest serve the end of a plane: a 7x7 output (a row of
7 and its border, 55 positions) computed as runs of 48 then 16 positions, not 96.
:func:`dots` is the weight gradient's counterpart: dot products over the positions, the sums
of several outputs and kernel offsets in registers.

Why IR: Numba vectorises only innermost loops, so in Python the sums over ``(c, t)`` must go
through memory (a load and a store of the sum per input stream), and that kernel ran at ~70
GFLOP/s a core; the blocked sums run at 120-160 (ResNeXt's grouped layers, one core).
"""

import functools

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

VECTOR_BYTES = 64


@njit(cache=True, nogil=True, inline="always")
def vectors(ob):
    """Vectors of positions per output of block ``ob``: ``ob * vectors(ob)`` sums in registers
    (24 of AVX-512's 32; measured on ResNeXt's grouped layers, one core: 8 x 3 and 4 x 6 ran at
    120-150 GFLOP/s, 6 x 4 at 110, 12 x 2 at 85).  One output, a depthwise plane, is bound by its
    input loads whatever the block."""
    return 3 if ob == 8 else 6 if ob == 4 else 8 if ob == 2 else 4


def vector_ops(context, builder, array_t):
    """``(vector, lanes, itemsize, at, below, load, store)`` for ``array_t``'s dtype: the 64-byte
    vector type, its lanes and item size; a vector pointer at ``base[start + offset]``; the mask
    of the lanes below ``count``; the masked load (zeros in the lanes masked off) and store."""
    value = context.get_value_type(array_t.dtype)
    itemsize = context.get_abi_sizeof(value)
    lanes = VECTOR_BYTES // itemsize
    vector = ir.VectorType(value, lanes)
    pointer, i32 = vector.as_pointer(), ir.IntType(32)
    mask_t = ir.VectorType(ir.IntType(1), lanes)
    suffix = f"v{lanes}f{8 * itemsize}.p0"
    masked_load = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vector, [pointer, i32, mask_t, vector]), f"llvm.masked.load.{suffix}")
    masked_store = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [vector, pointer, i32, mask_t]), f"llvm.masked.store.{suffix}")
    align = ir.Constant(i32, itemsize)

    def at(base, start, offset):
        return builder.bitcast(builder.gep(base, [builder.add(start, offset)]), pointer)

    def below(count):
        return builder.icmp_signed("<", ir.Constant(ir.VectorType(count.type, lanes), list(range(lanes))),
                                   splat(builder, count, lanes))

    def load(ptr, mask):
        return builder.call(masked_load, [ptr, align, mask, ir.Constant(vector, [0.0] * lanes)])

    def store(values, ptr, mask):
        builder.call(masked_store, [values, ptr, align, mask])

    return vector, lanes, itemsize, at, below, load, store


def splat(builder, value, lanes):
    """A vector of ``lanes`` copies of the scalar ``value``."""
    vector = ir.VectorType(value.type, lanes)
    first = builder.insert_element(ir.Constant(vector, ir.Undefined), value, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(first, ir.Constant(vector, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes))


def by_count(builder, count, most, emit):
    """A switch on the run-time ``count``: a case for each of 1 .. ``most`` holding the code
    ``emit(k)`` writes for that compile-time ``k``; any other count does nothing."""
    done = builder.append_basic_block("done")
    switch = builder.switch(count, done)
    for k in range(1, most + 1):
        case = builder.append_basic_block(f"count{k}")
        switch.add_case(ir.Constant(count.type, k), case)
        builder.position_at_end(case)
        emit(k)
        builder.branch(done)
    builder.position_at_end(done)


def _fma(builder, vector):
    """LLVM's fused multiply-add of ``vector`` operands."""
    kind = "f32" if vector.element == ir.FloatType() else "f64"
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(vector, [vector] * 3),
                                          f"llvm.fma.v{vector.count}{kind}")


@functools.cache
def block(ob, gathered=False):
    """The Numba intrinsic computing ``ob`` outputs' block of ``count`` vectors (module docstring),
    one loop nest per count up to :func:`vectors`, chosen by a switch; ``gathered``, the
    variant reading ``w`` through its tables."""

    def codegen(context, builder, signature, args):
        (count, src, src_start, plane, offsets, channels, w, w_start, w_stride, w_channel_stride), rest = (
            args[:10], args[10:])
        out, out_start, out_stride = rest[-3:]
        vector, lanes, itemsize, at, _, _, _ = vector_ops(context, builder, signature.args[1])
        fma = _fma(builder, vector)
        index = src_start.type

        def const(v):
            return ir.Constant(index, v)

        def pointer(i):
            return context.make_array(signature.args[i])(context, builder, args[i]).data

        src_p, w_p, out_p = pointer(1), pointer(6), pointer(len(args) - 3)
        offsets_a = context.make_array(signature.args[4])(context, builder, offsets)
        taps = builder.extract_value(offsets_a.shape, 0)
        if gathered:  # w_start, w_stride: the positions table and the block's first entry in it
            w_offsets_p, table = pointer(10), pointer(7)
            rows = [builder.load(builder.gep(table, [builder.add(w_stride, const(o))])) for o in range(ob)]
            w_start = const(0)
        else:
            rows = [builder.mul(const(o), w_stride) for o in range(ob)]

        def sum_block(vecs):
            # The sums as stack slots: LLVM's mem2reg turns them into registers across the loops.
            sums = [[cgutils.alloca_once_value(builder, ir.Constant(vector, [0.0] * lanes)) for _ in range(vecs)]
                    for _ in range(ob)]

            def step(c, t):  # the sums' multiply-adds of channel c and kernel offset t
                start = builder.add(builder.add(src_start, builder.mul(c, plane)),
                                    builder.load(builder.gep(offsets_a.data, [t])))
                xs = [builder.load(at(src_p, start, const(v * lanes)), align=itemsize) for v in range(vecs)]
                w_tap = builder.load(builder.gep(w_offsets_p, [t])) if gathered else t
                t_w = builder.add(builder.add(w_start, builder.mul(c, w_channel_stride)), w_tap)
                for o in range(ob):
                    at_w = builder.gep(w_p, [builder.add(t_w, rows[o])])
                    broadcast = splat(builder, builder.load(at_w), lanes)
                    for v in range(vecs):
                        builder.store(builder.call(fma, [broadcast, xs[v], builder.load(sums[o][v])]), sums[o][v])

            outer, inner = (taps, channels) if gathered else (channels, taps)  # gathered: channels innermost
            with cgutils.for_range(builder, outer) as outer_loop:
                with cgutils.for_range(builder, inner) as inner_loop:
                    if gathered:
                        step(inner_loop.index, outer_loop.index)
                    else:
                        step(outer_loop.index, inner_loop.index)
            for o in range(ob):
                o_out = builder.add(out_start, builder.mul(const(o), out_stride))
                for v in range(vecs):
                    builder.store(builder.load(sums[o][v]), at(out_p, o_out, const(v * lanes)), align=itemsize)

        by_count(builder, count, vectors.py_func(ob), sum_block)
        return context.get_dummy_value()

    if gathered:
        @intrinsic
        def register_block(typingctx, count, src, src_start, plane, offsets, channels, w, positions, first,
                           w_channel_stride, w_offsets, out, out_start, out_stride):
            return types.void(types.intp, src, types.intp, types.intp, offsets, types.intp, w, positions,
                              types.intp, types.intp, w_offsets, out, types.intp, types.intp), codegen
    else:
        @intrinsic
        def register_block(typingctx, count, src, src_start, plane, offsets, channels, w, w_start, w_stride,
                           w_channel_stride, out, out_start, out_stride):
            return types.void(types.intp, src, types.intp, types.intp, offsets, types.intp, w, types.intp,
                              types.intp, types.intp, out, types.intp, types.intp), codegen

    return register_block


# Kernel offsets a call of ``dots(ob)`` sums at most: ``ob * TAP_BLOCK`` sums in registers.
TAP_BLOCK = 9


@functools.cache
def dots(ob):
    """The Numba intrinsic of the weight gradient's register-blocked dot products, the forward's
    counterpart: ``dots(ob)(taps, g, g_start, g_stride, x, x_start, offsets, t0, n, sums, s_start,
    s_stride)`` adds, for ``o < ob`` and ``i < taps`` (at most :data:`TAP_BLOCK`)::

        sums[s_start + o*s_stride + i] += sum_{q < n} g[g_start + o*g_stride + q] * x[x_start + offsets[t0 + i] + q]

    The ``ob x taps`` sums are vectors over ``q`` held in registers (each step ``ob + taps``
    loads, the last masked, into ``ob * taps`` fused multiply-adds), added across their lanes
    at the end; one loop nest per ``taps``, chosen by a switch."""

    @intrinsic
    def register_dots(typingctx, taps, g, g_start, g_stride, x, x_start, offsets, t0, n, sums, s_start, s_stride):
        sig = types.void(types.intp, g, types.intp, types.intp, x, types.intp, offsets, types.intp, types.intp, sums,
                         types.intp, types.intp)

        def codegen(context, builder, signature, args):
            taps, g, g_start, g_stride, x, x_start, offsets, t0, n, sums, s_start, s_stride = args
            vector, lanes, itemsize, at, below, load, _ = vector_ops(context, builder, signature.args[1])
            fma = _fma(builder, vector)
            index, i32 = n.type, ir.IntType(32)

            def const(v):
                return ir.Constant(index, v)

            def data(i):
                return context.make_array(signature.args[i])(context, builder, args[i]).data

            g_p, x_p, offsets_p, sums_p = data(1), data(4), data(6), data(9)

            def across(v):  # the sum of v's lanes, halves added until one is left
                width = lanes
                while width > 1:
                    width //= 2
                    halves = [builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(i32, width),
                                                                         list(range(start, start + width))))
                              for start in (0, width)]
                    v = builder.fadd(*halves)
                return builder.extract_element(v, ir.Constant(i32, 0))

            def dot_block(count):
                sums_v = [[cgutils.alloca_once_value(builder, ir.Constant(vector, [0.0] * lanes)) for _ in range(count)]
                          for _ in range(ob)]
                starts = [builder.add(x_start, builder.load(builder.gep(offsets_p, [builder.add(t0, const(i))])))
                          for i in range(count)]
                steps = builder.udiv(builder.add(n, const(lanes - 1)), const(lanes))
                with cgutils.for_range(builder, steps) as loop:
                    q = builder.mul(loop.index, const(lanes))
                    mask = below(builder.sub(n, q))  # the last step's lanes past n load zeros
                    gs = [load(at(g_p, builder.add(g_start, builder.mul(const(o), g_stride)), q), mask)
                          for o in range(ob)]
                    for i in range(count):
                        xs = load(at(x_p, starts[i], q), mask)
                        for o in range(ob):
                            builder.store(builder.call(fma, [gs[o], xs, builder.load(sums_v[o][i])]), sums_v[o][i])
                for o in range(ob):
                    for i in range(count):
                        slot = builder.gep(sums_p, [builder.add(s_start, builder.add(builder.mul(const(o), s_stride),
                                                                                     const(i)))])
                        builder.store(builder.fadd(builder.load(slot), across(builder.load(sums_v[o][i]))), slot)

            by_count(builder, taps, TAP_BLOCK, dot_block)
            return context.get_dummy_value()

        return sig, codegen

    return register_dots


_BLOCK8, _BLOCK4, _BLOCK2, _BLOCK1 = block(8), block(4), block(2), block(1)
_DOTS3, _DOTS2, _DOTS1 = dots(3), dots(2), dots(1)


@njit(cache=True, nogil=True, inline="always")
def fit(outputs):
    """The largest output block, 8, 4, 2 or 1, of at most ``outputs``."""
    return 8 if outputs >= 8 else 4 if outputs >= 4 else 2 if outputs >= 2 else 1


@njit(cache=True, nogil=True, inline="always")
def lanes(itemsize):
    """Positions a vector holds: a block of ``count`` vectors computes ``count * lanes(itemsize)``."""
    return VECTOR_BYTES // itemsize


@njit(cache=True, nogil=True, inline="always")
def run_block(ob, count, src, src_start, plane, offsets, channels, w, w_start, w_stride, w_channel_stride, out,
              out_start, out_stride):
    """``block(ob)(count, ...)`` for ``ob`` known only at run time."""
    if ob == 8:
        _BLOCK8(count, src, src_start, plane, offsets, channels, w, w_start, w_stride, w_channel_stride, out, out_start,
                out_stride)
    elif ob == 4:
        _BLOCK4(count, src, src_start, plane, offsets, channels, w, w_start, w_stride, w_channel_stride, out, out_start,
                out_stride)
    elif ob == 2:
        _BLOCK2(count, src, src_start, plane, offsets, channels, w, w_start, w_stride, w_channel_stride, out, out_start,
                out_stride)
    else:
        _BLOCK1(count, src, src_start, plane, offsets, channels, w, w_start, w_stride, w_channel_stride, out, out_start,
                out_stride)


@njit(cache=True, nogil=True, inline="always")
def run_dots(ob, taps, g, g_start, g_stride, x, x_start, offsets, t0, n, sums, s_start, s_stride):
    """``dots(ob)(taps, ...)`` for ``ob`` (3, 2 or 1) known only at run time."""
    if ob == 3:
        _DOTS3(taps, g, g_start, g_stride, x, x_start, offsets, t0, n, sums, s_start, s_stride)
    elif ob == 2:
        _DOTS2(taps, g, g_start, g_stride, x, x_start, offsets, t0, n, sums, s_start, s_stride)
    else:
        _DOTS1(taps, g, g_start, g_stride, x, x_start, offsets, t0, n, sums, s_start, s_stride)


@njit(cache=True, nogil=True)
def matmul(a, b, first, c):
    """``c[i] = a[i] @ b[i, :, first : first + N]`` for every ``i``: a (B, M, K), b (B, K, L), c
    (B, M, N), C-contiguous, ``N`` a multiple of :func:`lanes`.

    Blocks of 8 rows of ``c`` by 3 vectors of columns (:func:`block`; the rows are its
    outputs, ``a``'s rows its broadcast weights, ``b``'s rows its input planes), a column
    block of ``b`` kept in cache while every row block passes; ``N`` of 4 or 5 vectors as
    blocks of 4 rows by all of them, rather than 3 vectors and a narrow rest (N = 64 float32:
    154-159 GFLOP/s rather than 142).  Narrow GEMMs (M of 16 to 128, K of 128 to 512,
    Winograd's per-point products) ran at 115-160 GFLOP/s a core, OpenBLAS's (packing ``b``
    per call) at 80-105.
    """
    batch, rows, depth = a.shape
    cols, width = c.shape[2], b.shape[2]
    step = lanes(a.itemsize)
    tall = 4 if 4 <= cols // step <= 5 else 8  # rows of a block
    span = vectors(tall) * step  # columns of a block
    offsets = np.zeros(1, dtype=np.int64)
    af, bf, cf = a.ravel(), b.ravel(), c.ravel()
    for i in range(batch):
        for q in range(0, cols, span):
            count = min(vectors(tall), (cols - q) // step)
            t = 0
            while t < rows:
                ob = fit(min(tall, rows - t))
                run_block(ob, count, bf, i * depth * width + first + q, width, offsets, depth,
                          af, (i * rows + t) * depth, depth, 1, cf, (i * rows + t) * cols + q, cols)
                t += ob


@njit(cache=True, nogil=True, inline="always")
def sum_runs(count, length, src, plane, offsets, channels, w, w_start, w_stride, w_channel_stride, out, row):
    """:func:`run_block` for ``count`` outputs over positions ``0 .. length``: out row ``j`` at
    ``j * row``, its weights from ``w_start + j * w_stride``; the outputs 8, 4, 2 or 1 at a time
    (:func:`fit`), the positions in runs of the widest block, the last only as many vectors as
    it needs (it may write up to ``lanes - 1`` positions past ``length``, reading as far past)."""
    step = lanes(src.itemsize)
    j = 0
    while j < count:
        ob = fit(count - j)
        q = 0
        while q < length:
            count_v = min(vectors(ob), -(-(length - q) // step))
            run_block(ob, count_v, src, q, plane, offsets, channels, w, w_start + j * w_stride, w_stride,
                      w_channel_stride, out, j * row + q, row)
            q += count_v * step
        j += ob
