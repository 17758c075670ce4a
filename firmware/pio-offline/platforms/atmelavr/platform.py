"""tinygmm's offline atmelavr platform: Debian's avr-gcc and Arduino AVR core, nothing downloaded."""
from platformio.public import PlatformBase


class AtmelavrPlatform(PlatformBase):
    pass
