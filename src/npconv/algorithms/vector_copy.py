"""Row moves in 64-byte vectors, the last one masked, emitted as LLVM IR: ``copy(dst, d, src, s, n)``
is ``dst[d : d + n] = src[s : s + n]``; ``deal(even, e, odd, o, src, s, n)`` deals ``n`` pairs,
``even[e : e + n] = src[s : s + 2n : 2]`` and ``odd[o : o + n] = src[s + 1 : s + 2n : 2]`` (a
row into its two column phases at stride 2); ``evens`` keeps the even phase alone (a row read
at stride 2); ``weave`` is deal's inverse; ``transpose`` moves a block of up to a vector's
lanes square, rows to columns.

The direct kernels (:mod:`.depthwise`) move planes row by row, and their rows are short: 7 to
28 values on ResNeXt's and MobileNetV2's layers.  A loop LLVM vectorises itself runs such rows
through its scalar remainder (its vector body takes 32 or more values); here a 14-value row is
one masked load and store.  Rows in cache moved 2.4x faster (0.12 against 0.29 ns a value, 14
and 7 wide); rows streamed from memory move at memory speed either way.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .register_block import vector_ops


@intrinsic
def copy(typingctx, dst, d, src, s, n):
    """``dst[d : d + n] = src[s : s + n]`` for contiguous 1-d arrays of one dtype; ``n >= 0``."""
    sig = types.void(dst, types.intp, src, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        dst, d, src, s, n = args
        _, lanes, itemsize, at, below, load, store = vector_ops(context, builder, signature.args[0])
        dst_p = context.make_array(signature.args[0])(context, builder, dst).data
        src_p = context.make_array(signature.args[2])(context, builder, src).data
        index = n.type
        whole = builder.udiv(n, ir.Constant(index, lanes))
        with cgutils.for_range(builder, whole) as loop:
            offset = builder.mul(loop.index, ir.Constant(index, lanes))
            builder.store(builder.load(at(src_p, s, offset), align=itemsize), at(dst_p, d, offset), align=itemsize)
        done = builder.mul(whole, ir.Constant(index, lanes))
        left = builder.sub(n, done)
        with builder.if_then(builder.icmp_signed(">", left, ir.Constant(index, 0))):
            mask = below(left)
            store(load(at(src_p, s, done), mask), at(dst_p, d, done), mask)
        return context.get_dummy_value()

    return sig, codegen


def _dealer(phases, sig, outs, src_at):
    """Codegen storing, per ``lanes`` pairs of the source (two loads, a shuffle a phase), the
    ``phases`` (0: even, 1: odd) into their arrays.  ``outs``: per phase the argument positions
    of its array and start; ``src_at``: those of the source, its start and the pair count.
    Only the values up to the last phase kept are read."""

    def codegen(context, builder, signature, args):
        src_i, s_i, n_i = src_at
        s, n = args[s_i], args[n_i]
        _, lanes, _, at, below, load, store = vector_ops(context, builder, signature.args[src_i])

        def data(i):
            return context.make_array(signature.args[i])(context, builder, args[i]).data

        src_p = data(src_i)
        index = n.type
        lanes_c, two = ir.Constant(index, lanes), ir.Constant(index, 2)
        picks = [ir.Constant(ir.VectorType(ir.IntType(32), lanes), list(range(first, 2 * lanes, 2)))
                 for first in (0, 1)]  # the even lanes of (low, high), the odd ones
        with cgutils.for_range(builder, builder.udiv(builder.add(n, ir.Constant(index, lanes - 1)), lanes_c)) as loop:
            done = builder.mul(loop.index, lanes_c)  # pairs dealt so far
            read = builder.mul(done, two)
            values_left = builder.sub(builder.mul(builder.sub(n, done), two), ir.Constant(index, 1 - max(phases)))
            low = load(at(src_p, s, read), below(values_left))
            high = load(at(src_p, s, builder.add(read, lanes_c)), below(builder.sub(values_left, lanes_c)))
            mask = below(builder.sub(n, done))
            for phase, (array_i, start_i) in zip(phases, outs):
                store(builder.shuffle_vector(low, high, picks[phase]), at(data(array_i), args[start_i], done), mask)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def deal(typingctx, even, e, odd, o, src, s, n):
    """``even[e : e + n] = src[s : s + 2n : 2]``, ``odd[o : o + n] = src[s + 1 : s + 2n : 2]`` for
    contiguous 1-d arrays of one dtype; ``n >= 0``: per ``lanes`` pairs two loads, two shuffles, two
    stores."""
    sig = types.void(even, types.intp, odd, types.intp, src, types.intp, types.intp)
    return _dealer((0, 1), sig, ((0, 1), (2, 3)), (4, 5, 6))


@intrinsic
def evens(typingctx, dst, d, src, s, n):
    """``dst[d : d + n] = src[s : s + 2n - 1 : 2]`` (a stride-2 read) for contiguous 1-d arrays of
    one dtype; ``n >= 0``: :func:`deal`'s even phase alone, reading nothing past its last value."""
    sig = types.void(dst, types.intp, src, types.intp, types.intp)
    return _dealer((0,), sig, ((0, 1),), (2, 3, 4))


@intrinsic
def weave(typingctx, dst, d, even, e, odd, o, n):
    """``dst[d : d + n : 2] = even[e : ...]``, ``dst[d + 1 : d + n : 2] = odd[o : ...]``: ``n``
    values, the inverse of :func:`deal` (two column phases into one row at stride 2), for
    contiguous 1-d arrays of one dtype; ``n >= 0``.  Per ``lanes`` pairs two loads, two
    shuffles, two stores."""
    sig = types.void(dst, types.intp, even, types.intp, odd, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        dst, d, even, e, odd, o, n = args
        _, lanes, _, at, below, load, store = vector_ops(context, builder, signature.args[0])
        dst_p, even_p, odd_p = (context.make_array(signature.args[i])(context, builder, args[i]).data
                                for i in (0, 2, 4))
        index = n.type
        lanes_c, one, two = ir.Constant(index, lanes), ir.Constant(index, 1), ir.Constant(index, 2)
        halves = [ir.Constant(ir.VectorType(ir.IntType(32), lanes),
                              [half * lanes // 2 + j // 2 + (j % 2) * lanes for j in range(lanes)])
                  for half in (0, 1)]  # pairs (even[i], odd[i]) of the low lanes, then the high ones
        pairs = builder.udiv(builder.add(n, one), two)  # even values; odd ones: n // 2
        chunks = builder.udiv(builder.add(pairs, ir.Constant(index, lanes - 1)), lanes_c)
        with cgutils.for_range(builder, chunks) as loop:
            done = builder.mul(loop.index, lanes_c)  # pairs woven so far
            left = builder.sub(n, builder.mul(done, two))  # values left to write
            evens_v = load(at(even_p, e, done), below(builder.udiv(builder.add(left, one), two)))
            odds_v = load(at(odd_p, o, done), below(builder.udiv(left, two)))
            start = builder.mul(done, two)
            store(builder.shuffle_vector(evens_v, odds_v, halves[0]), at(dst_p, d, start), below(left))
            store(builder.shuffle_vector(evens_v, odds_v, halves[1]), at(dst_p, d, builder.add(start, lanes_c)),
                  below(builder.sub(left, lanes_c)))
        return context.get_dummy_value()

    return sig, codegen

def _swap_bit_masks(lanes, bit):
    """The two shuffles of one step of :func:`transpose`'s butterfly: of rows ``i`` (bit clear)
    and ``i | bit`` side by side (lanes 0 .. 2*lanes), the new rows that swap bit ``bit`` of the
    row index with the same bit of the column index."""
    low = [j if not j & bit else lanes + (j ^ bit) for j in range(lanes)]
    high = [j | bit if not j & bit else lanes + j for j in range(lanes)]
    return [ir.Constant(ir.VectorType(ir.IntType(32), lanes), picks) for picks in (low, high)]


@intrinsic
def transpose(typingctx, dst, d, d_stride, src, s, s_stride, rows, cols):
    """``dst[d + j*d_stride + i] = src[s + i*s_stride + j]`` for ``i < rows``, ``j < cols``, both
    at most one vector's lanes: a block of ``rows`` rows of ``cols`` values, written as ``cols``
    rows of ``rows`` values, for contiguous 1-d arrays of one dtype.  Loads its rows (masked),
    swaps row and column bits in log2(lanes) steps of two-vector shuffles (64 shuffles for
    float32's 16 x 16), stores (masked): no value goes through a scalar load or store."""
    sig = types.void(dst, types.intp, types.intp, src, types.intp, types.intp, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        dst, d, d_stride, src, s, s_stride, rows, cols = args
        _, lanes, _, at, below, load, store = vector_ops(context, builder, signature.args[0])
        dst_p = context.make_array(signature.args[0])(context, builder, dst).data
        src_p = context.make_array(signature.args[3])(context, builder, src).data
        index, none = rows.type, ir.Constant(ir.VectorType(ir.IntType(1), lanes), [0] * lanes)

        def row_mask(i, count, width):  # the lanes below width, in rows below count only
            present = builder.icmp_signed("<", ir.Constant(index, i), count)
            return builder.select(present, below(width), none)

        block = [load(at(src_p, s, builder.mul(ir.Constant(index, i), s_stride)), row_mask(i, rows, cols))
                 for i in range(lanes)]
        bit = 1
        while bit < lanes:
            low, high = _swap_bit_masks(lanes, bit)
            for i in range(lanes):
                if not i & bit:
                    a, b = block[i], block[i | bit]
                    block[i], block[i | bit] = builder.shuffle_vector(a, b, low), builder.shuffle_vector(a, b, high)
            bit *= 2
        for j in range(lanes):
            store(block[j], at(dst_p, d, builder.mul(ir.Constant(index, j), d_stride)), row_mask(j, cols, rows))
        return context.get_dummy_value()

    return sig, codegen
