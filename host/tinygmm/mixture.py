"""Moved to tinygmm.fit.mixture; this name stays an alias of it, so imports written before the move work."""
import sys

from .fit import mixture as _moved

sys.modules[__name__] = _moved
