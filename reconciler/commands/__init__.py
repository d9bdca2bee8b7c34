"""One module per command of the command line (reconciler/cli.py parses and
dispatches; these do the work and return the exit code)."""
