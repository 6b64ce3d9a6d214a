"""The interface every convolution algorithm implements."""

from ..errors import UnsupportedAlgorithmError


class Algorithm:
    """One way of computing a convolution.

    Subclasses set ``name`` and implement :meth:`why_unsupported`, :meth:`workspace_bytes`,
    :meth:`estimated_seconds` (the cost model ``auto`` ranks by) and :meth:`run`.
    ``reference`` algorithms are exact but slow; ``auto`` picks them only when nothing
    else supports the geometry.
    """

    name = None
    reference = False

    def why_unsupported(self, geom):
        """``None`` when this algorithm can compute ``geom``; otherwise the reason, in words."""
        return None

    def workspace_bytes(self, geom):
        """Scratch bytes :meth:`run` allocates for ``geom`` (beyond input, weight and output)."""
        raise NotImplementedError

    def estimated_seconds(self, geom):
        """A rough run time for ``geom`` on this machine; only its ranking matters."""
        raise NotImplementedError

    def run(self, x, weight, geom, out):
        """Write the bias-free convolution of ``x`` with ``weight`` into every element of ``out``.

        ``x`` (N, C_in, *in_size) and ``weight`` (C_out, C_in/groups, *kernel) are C-contiguous
        arrays of ``geom.dtype``; ``out`` is a C-contiguous (N, C_out, *out_size) array of it.
        """
        raise NotImplementedError

    def check(self, geom):
        """Raise :class:`UnsupportedAlgorithmError` unless this algorithm supports ``geom``."""
        reason = self.why_unsupported(geom)
        if reason is not None:
            raise UnsupportedAlgorithmError(f"algorithm {self.name!r} cannot compute this convolution: {reason}")
