"""Build the bare-metal firmware of a CPU class with Debian's cross toolchain; `-t size`.

The board manifest says everything machine-specific: the toolchain prefix, CPU and float-ABI
flags, the C library's specs, the linker script (in the project's src/bare/, beside the glue)
and the TINYGMM_MACHINE_* define (build.extra_flags, applied by PlatformIO) choosing the UART.
There is no board to upload to: the firmware runs in QEMU (`tinygmm verify --emulator ENV`).
"""
import sys
from os.path import join

from SCons.Script import AlwaysBuild, Default, DefaultEnvironment

env = DefaultEnvironment()
board = env.BoardConfig()
prefix = board.get("build.toolchain")
for tool in ("gcc", "g++", "gcc-ar", "objcopy", "size"):
    if not env.WhereIs("%s-%s" % (prefix, tool)):
        sys.stderr.write("Error: %s-%s not found: apt-get install %s\n" % (prefix, tool, board.get("build.debian_packages")))
        env.Exit(1)

cpu = board.get("build.cpu_flags")
specs = board.get("build.specs")
env.Replace(
    AR=prefix + "-gcc-ar", AS=prefix + "-gcc", CC=prefix + "-gcc", CXX=prefix + "-g++", OBJCOPY=prefix + "-objcopy",
    RANLIB=prefix + "-gcc-ranlib", SIZETOOL=prefix + "-size", ARFLAGS=["rc"], PROGNAME="firmware", PROGSUFFIX=".elf",
    # Flash = code, constants (the model) and .data's initialisers; RAM = .data, .bss and the TLS block.
    SIZECHECKCMD="$SIZETOOL -A -d $SOURCES",
    SIZEPROGREGEXP=r"^(?:\.init|\.text|\.rodata|\.srodata|\.ARM\.exidx|\.data|\.sdata|\.tdata)\s+(\d+).*",
    SIZEDATAREGEXP=r"^(?:\.data|\.sdata|\.tdata|\.tbss|\.bss|\.sbss)\s+(\d+).*",
    SIZEPRINTCMD="$SIZETOOL -A -d $SOURCES",
)
env.Append(
    ASFLAGS=cpu + ["-x", "assembler-with-cpp"],
    CCFLAGS=cpu + specs + ["-Os", "-Wall", "-ffunction-sections", "-fdata-sections"],
    CFLAGS=["-std=gnu11"],
    CXXFLAGS=["-std=gnu++11", "-fno-exceptions", "-fno-rtti"],
    # PlatformIO adds -T from the manifest's build.ldscript (board_build.ldscript overrides it).
    LINKFLAGS=cpu + specs + board.get("build.link_flags") + ["-Os", "-Wl,--gc-sections"],
    LIBPATH=[join("$PROJECT_SRC_DIR", "bare")],  # where the linker scripts are: beside the glue
    LIBS=["m"],
)

elf = env.BuildProgram()
env.Alias("buildprog", elf)
AlwaysBuild(env.Alias("size", elf, env.VerboseAction("$SIZEPRINTCMD", "Calculating size $SOURCE")))


def _no_upload(target, source, env):
    sys.stderr.write("Error: %s is a CPU class with no board to upload to: it runs in QEMU "
                     "(tinygmm verify DIR --emulator %s)\n" % (env.subst("$PIOENV"), env.subst("$PIOENV")))
    env.Exit(1)


AlwaysBuild(env.Alias("upload", elf, env.VerboseAction(_no_upload, "Uploading")))
Default([elf])
