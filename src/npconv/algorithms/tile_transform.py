"""Winograd's tile transforms ``Y = A X A^T`` on 64-byte vectors of channels, emitted as LLVM IR.

``transform(mat, dst, d, d_row, d_col, src, s, s_row, s_col, count)`` computes, for
``a, b < h`` and lanes ``l < count`` (at most one vector's)::

    dst[d + a*d_row + b*d_col + l] = sum_{p, q < k} mat[a][p] * mat[b][q] * src[s + p*s_row + q*s_col + l]

``mat`` an ``h``-tuple of ``k``-tuples of the arrays' dtype (:func:`.winograd.coefficients`),
``src`` and ``dst`` contiguous 1-d arrays of that dtype.  The ``k x k`` input vectors are
loaded once; the ``h x k`` vectors of ``A X`` and the ``h x h`` of ``Y`` are sums in registers,
each output written once, the lanes from ``count`` up neither read nor written.  Numba's
loops (one row of a matrix product at a time, vectorised over channels) went through memory
for ``A X`` and compiled to 256-bit vectors with scalar tails: the sums of an F(3, 2) output
transform took 0.5 ns a value on one core (its data in L2), against 0.24 here (0.06-0.09 with
a tile's data in L1).
"""

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .register_block import _fma, splat, vector_ops


@intrinsic
def transform(typingctx, mat, dst, d, d_row, d_col, src, s, s_row, s_col, count):
    """The module docstring's ``Y = A X A^T`` of one tile's ``count`` channels."""
    sig = types.void(mat, dst, types.intp, types.intp, types.intp, src, types.intp, types.intp, types.intp,
                     types.intp)
    h, k = len(mat), len(mat[0])

    def codegen(context, builder, signature, args):
        mat, dst, d, d_row, d_col, src, s, s_row, s_col, count = args
        vector, lanes, _, at, below, load, store = vector_ops(context, builder, signature.args[1])
        fma = _fma(builder, vector)
        dst_p = context.make_array(signature.args[1])(context, builder, dst).data
        src_p = context.make_array(signature.args[5])(context, builder, src).data
        index, mask = s.type, below(count)

        def const(v):
            return ir.Constant(index, v)

        coef = [[splat(builder, builder.extract_value(mat, [a, p]), lanes) for p in range(k)] for a in range(h)]

        def combine(row, vectors):  # sum_p row[p] * vectors[p]
            total = builder.fmul(row[0], vectors[0])
            for c, v in zip(row[1:], vectors[1:]):
                total = builder.call(fma, [c, v, total])
            return total

        x = [[load(at(src_p, s, builder.add(builder.mul(const(p), s_row), builder.mul(const(q), s_col))), mask)
              for q in range(k)] for p in range(k)]
        ax = [[combine(coef[a], [x[p][q] for p in range(k)]) for q in range(k)] for a in range(h)]  # (A X)[a][q]
        for a in range(h):
            for b in range(h):
                offset = builder.add(builder.mul(const(a), d_row), builder.mul(const(b), d_col))
                store(combine(coef[b], ax[a]), at(dst_p, d, offset), mask)
        return context.get_dummy_value()

    return sig, codegen
