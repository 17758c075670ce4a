"""A model as a PlatformIO project: the board table, export, PlatformIO runs and the offline core, serial ports."""
