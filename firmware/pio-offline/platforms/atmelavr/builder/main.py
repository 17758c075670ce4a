"""Build for an AVR board with Debian's avr-gcc: -Os, LTO, libm, Intel hex; `-t size`, `-t upload` (avrdude),
`-t nobuild -t upload` (what was built before, as PlatformIO's own platforms)."""
import sys
from os.path import isfile, join

from SCons.Script import COMMAND_LINE_TARGETS, AlwaysBuild, Builder, Default, DefaultEnvironment

env = DefaultEnvironment()
INSTALL = "apt-get install gcc-avr avr-libc binutils-avr"
for tool in ("avr-gcc", "avr-g++", "avr-gcc-ar", "avr-objcopy", "avr-size"):
    if not env.WhereIs(tool):
        sys.stderr.write("Error: %s not found: %s\n" % (tool, INSTALL))
        env.Exit(1)

env.Replace(
    AR="avr-gcc-ar", AS="avr-gcc", CC="avr-gcc", CXX="avr-g++", OBJCOPY="avr-objcopy",
    RANLIB="avr-gcc-ranlib", SIZETOOL="avr-size", ARFLAGS=["rc"], PROGNAME="firmware", PROGSUFFIX=".elf",
    # Flash = .text + .data (initialisers live in flash); RAM = .data + .bss + .noinit.
    SIZECHECKCMD="$SIZETOOL -A -d $SOURCES",
    SIZEPROGREGEXP=r"^(?:\.text|\.data|\.bootloader)\s+(\d+).*",
    SIZEDATAREGEXP=r"^(?:\.data|\.bss|\.noinit)\s+(\d+).*",
    SIZEPRINTCMD="$SIZETOOL -A -d $SOURCES",
)
env.Append(
    ASFLAGS=["-x", "assembler-with-cpp", "-mmcu=$BOARD_MCU"],
    CCFLAGS=["-Os", "-Wall", "-ffunction-sections", "-fdata-sections", "-flto", "-mmcu=$BOARD_MCU"],
    CFLAGS=["-std=gnu11", "-fno-fat-lto-objects"],
    CXXFLAGS=["-std=gnu++11", "-fno-exceptions", "-fno-threadsafe-statics"],
    CPPDEFINES=[("F_CPU", "$BOARD_F_CPU")],
    LINKFLAGS=["-Os", "-mmcu=$BOARD_MCU", "-flto", "-fuse-linker-plugin", "-Wl,--gc-sections"],
    LIBS=["m"],
    BUILDERS=dict(ElfToHex=Builder(
        action=env.VerboseAction("$OBJCOPY -O ihex -R .eeprom $SOURCES $TARGET", "Building $TARGET"),
        suffix=".hex")),
)

if "nobuild" in COMMAND_LINE_TARGETS:  # upload the hex built before, building nothing
    elf = env.File(join("$BUILD_DIR", "${PROGNAME}.elf"))
    hexfile = env.File(join("$BUILD_DIR", "${PROGNAME}.hex"))
else:
    elf = env.BuildProgram()
    hexfile = env.ElfToHex(join("$BUILD_DIR", "${PROGNAME}"), elf)
    env.Depends(hexfile, "checkprogsize")
AlwaysBuild(env.Alias("nobuild", hexfile))
env.Alias("buildprog", hexfile)
AlwaysBuild(env.Alias("size", elf, env.VerboseAction("$SIZEPRINTCMD", "Calculating size $SOURCE")))

# Upload through the board's bootloader with the tool-avrdude package (Debian's avrdude, linked), with
# the flags PlatformIO's own atmelavr passes (-D: a bootloader does not erase the chip). PlatformIO
# itself prepends upload_flags (UPLOAD_FLAGS).
AVRDUDE_DIR = env.PioPlatform().get_package_dir("tool-avrdude") or ""
env.Replace(
    UPLOADER=join(AVRDUDE_DIR, "avrdude"),
    UPLOADERFLAGS=["-p", "$BOARD_MCU", "-C", join(AVRDUDE_DIR, "avrdude.conf"), "-c", "$UPLOAD_PROTOCOL",
                   "-b", "$UPLOAD_SPEED", "-P", "$UPLOAD_PORT", "-D"],
    UPLOADCMD="$UPLOADER $UPLOADERFLAGS -U flash:w:$SOURCES:i",
)


def _before_upload(target, source, env):
    if not isfile(env.subst("$UPLOADER")):  # the link dangles: Debian's avrdude is not installed
        sys.stderr.write("Error: avrdude not found: apt-get install avrdude\n")
        env.Exit(1)
    env.AutodetectUploadPort()


AlwaysBuild(env.Alias("upload", hexfile, [env.VerboseAction(_before_upload, "Looking for upload port..."),
                                          env.VerboseAction("$UPLOADCMD", "Uploading $SOURCE")]))
Default([hexfile])
