"""Names the entry point and the command share, in a module light enough for the entry point."""

from __future__ import annotations

from afetch._version import __version__

#: What ``afetch --version`` prints, whether the entry point's fast path or the option's callback
#: does.
VERSION_LINE = f"afetch {__version__}"
#: ``_AFETCH_COMPLETE=source_bash afetch`` prints the bash completion script (zsh, fish alike).
COMPLETE_VAR = "_AFETCH_COMPLETE"
