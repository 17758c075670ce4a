"""tinygmm: Gaussian mixture models from data to a microcontroller, verified on the device."""
__version__ = "0.1.0"
