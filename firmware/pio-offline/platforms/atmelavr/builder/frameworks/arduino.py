"""The Arduino framework for AVR boards from Debian's arduino-core-avr (core, variant, bundled libraries)."""
import re
import sys
from os.path import isfile, join

from SCons.Script import DefaultEnvironment

env = DefaultEnvironment()
board = env.BoardConfig()
fw = env.PioPlatform().get_package_dir("framework-arduino-avr")
core = join(fw, "cores", board.get("build.core"))
variant = join(fw, "variants", board.get("build.variant"))
if not fw or not isfile(join(core, "Arduino.h")):
    sys.stderr.write("Error: the Arduino AVR core is missing: apt-get install arduino-core-avr\n")
    env.Exit(1)

# ARDUINO=10807 for core 1.8.7: the IDE's encoding of the core version in platform.txt.
version = "1.8.7"
if isfile(join(fw, "platform.txt")):
    with open(join(fw, "platform.txt")) as f:
        found = re.search(r"^version=(\d+)\.(\d+)\.(\d+)", f.read(), re.M)
    if found:
        version = ".".join(found.groups())
major, minor, patch = (int(x) for x in version.split("."))

env.Append(
    CPPDEFINES=[("ARDUINO", major * 10000 + minor * 100 + patch), "ARDUINO_ARCH_AVR"],
    CPPPATH=[core, variant],
    # Debian's core 1.8.7 uses DECIMAL_DIG in WString.cpp; gcc-avr 5.4 defines it only for C.
    CXXFLAGS=["-DDECIMAL_DIG=9"],
    LIBSOURCE_DIRS=[join(fw, "libraries")],
)
env.Prepend(LIBS=[env.BuildLibrary(join("$BUILD_DIR", "FrameworkArduino"), core)])
