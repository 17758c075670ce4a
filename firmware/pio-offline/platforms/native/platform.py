"""tinygmm's offline native platform: nothing beyond PlatformIO's defaults."""
from platformio.public import PlatformBase


class NativePlatform(PlatformBase):
    pass
