"""The two kinds of failure npconv reports.

Invalid arguments raise the built-in ``ValueError`` / ``TypeError`` with a message that
names the operation, the rule and the values.  A valid request that one particular
algorithm cannot carry out raises :class:`UnsupportedAlgorithmError` (as NNPACK keeps
"invalid argument" and "unsupported algorithm" apart).
"""


class UnsupportedAlgorithmError(ValueError):
    """The requested algorithm cannot compute this (valid) convolution geometry."""
