"""The command line: commands by family, rendering, wiring, how a command ends.
deployer.cli.main (the entry point) says which module holds which command.
"""
