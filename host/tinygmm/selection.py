"""Moved to tinygmm.fit.selection; this name stays an alias of it, so imports written before the move work."""
import sys

from .fit import selection as _moved

sys.modules[__name__] = _moved
