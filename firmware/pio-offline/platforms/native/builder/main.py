"""Build the project as a host program with the system compiler; `-t exec` runs it."""
from SCons.Script import AlwaysBuild, Default, DefaultEnvironment

env = DefaultEnvironment()
program = env.BuildProgram()
env.Alias("buildprog", program)
run = env.VerboseAction("$SOURCE $PROGRAM_ARGS", "Executing $SOURCE")
AlwaysBuild(env.Alias("exec", program, run))
AlwaysBuild(env.Alias("upload", program, run))
Default([program])
