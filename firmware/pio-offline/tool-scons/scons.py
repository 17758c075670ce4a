# tinygmm offline core: run the SCons package unpacked next to this file (PlatformIO runs this script).
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from SCons.Script import main  # noqa: E402
main()
