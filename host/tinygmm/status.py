"""The C core's status codes (tinygmm_status in firmware/lib/tinygmm/tinygmm.h): one place for the
twin, the link and the checks. A leaf: it imports nothing of tinygmm."""

OK = 0
ERR_FEATURES = 1
ERR_NONFINITE = 2
ERR_OVERFLOW = 3
ERR_MODEL = 4
ERR_NO_THRESHOLD = 5
STATUS_NAMES = {OK: "ok", ERR_FEATURES: "wrong feature count", ERR_NONFINITE: "NaN or Inf input",
                ERR_OVERFLOW: "float32 overflow", ERR_MODEL: "unusable model", ERR_NO_THRESHOLD: "no threshold"}
# The five outputs, in the order the protocol, the twin and verify list them.
OPS = ("predict", "log_joint", "score", "proba", "anomaly")
