"""tinygmm's offline platform for the CPU classes run in QEMU (PlatformIO derives the class name
TinygmmqemuPlatform from the platform's name); the board's toolchain package is the one it needs."""
from platformio.public import PlatformBase


class TinygmmqemuPlatform(PlatformBase):
    def configure_default_packages(self, variables, targets):
        board = self.board_config(variables.get("board")) if variables.get("board") else None
        if board is not None:
            self.packages[board.get("build.toolchain_package")]["optional"] = False
        return super().configure_default_packages(variables, targets)
