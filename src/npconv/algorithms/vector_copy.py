"""Row moves in 64-byte vectors, the last one masked, emitted as LLVM IR: ``copy(dst, d, src, s, n)``
is ``dst[d : d + n] = src[s : s + n]``; ``deal(even, e, odd, o, src, s, n)`` deals ``n`` pairs,
``even[e : e + n] = src[s : s + 2n : 2]`` and ``odd[o : o + n] = src[s + 1 : s + 2n : 2]`` (a
row into its two column phases at stride 2).

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


@intrinsic
def deal(typingctx, even, e, odd, o, src, s, n):
    """``even[e : e + n] = src[s : s + 2n : 2]``, ``odd[o : o + n] = src[s + 1 : s + 2n : 2]`` for
    contiguous 1-d arrays of one dtype; ``n >= 0``: per ``lanes`` pairs two loads, two shuffles, two
    stores."""
    sig = types.void(even, types.intp, odd, types.intp, src, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        even, e, odd, o, src, s, n = args
        _, lanes, itemsize, at, below, load, store = vector_ops(context, builder, signature.args[0])
        even_p = context.make_array(signature.args[0])(context, builder, even).data
        odd_p = context.make_array(signature.args[2])(context, builder, odd).data
        src_p = context.make_array(signature.args[4])(context, builder, src).data
        index = n.type
        lanes_c, two = ir.Constant(index, lanes), ir.Constant(index, 2)
        picks = [ir.Constant(ir.VectorType(ir.IntType(32), lanes), list(range(first, 2 * lanes, 2)))
                 for first in (0, 1)]  # the even lanes of (low, high), the odd ones
        with cgutils.for_range(builder, builder.udiv(builder.add(n, ir.Constant(index, lanes - 1)), lanes_c)) as loop:
            done = builder.mul(loop.index, lanes_c)  # pairs dealt so far
            read, values_left = builder.mul(done, two), builder.mul(builder.sub(n, done), two)
            low = load(at(src_p, s, read), below(values_left))
            high = load(at(src_p, s, builder.add(read, lanes_c)), below(builder.sub(values_left, lanes_c)))
            mask = below(builder.sub(n, done))
            store(builder.shuffle_vector(low, high, picks[0]), at(even_p, e, done), mask)
            store(builder.shuffle_vector(low, high, picks[1]), at(odd_p, o, done), mask)
        return context.get_dummy_value()

    return sig, codegen
