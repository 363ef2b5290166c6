"""The command line: commands, rendering, wiring, how a command ends."""
