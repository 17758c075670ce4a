"""tinygmm: Gaussian mixture models from data to a microcontroller, verified on the device."""
__version__ = "0.1.0"

from .mixture import GaussianMixture  # noqa: E402
