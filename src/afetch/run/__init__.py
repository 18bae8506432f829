"""One command-line run: wiring input to sinks, path checks, signals and exit codes."""
