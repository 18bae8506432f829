"""The ``afetch`` command: parsing options, usage errors, the demo, the process entry point."""
