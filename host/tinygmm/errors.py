"""The one exception type for problems a user can fix; the CLI prints it without a traceback."""


class TinyGMMError(Exception):
    """A problem with the user's input, files, board or environment, with what to do about it."""


class StaleFirmware(TinyGMMError):
    """The device runs another model than the project's: rebuild and flash before comparing."""


class NotFittedError(ValueError, AttributeError):
    """An estimator was used before ``fit`` (same bases as scikit-learn's)."""


class ConvergenceWarning(UserWarning):
    """EM stopped at ``max_iter`` before the lower bound changed by less than ``tol``."""
