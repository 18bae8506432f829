"""Watching URLs across runs: judging each record (``--accept``, ``--ok-if``), remembering
outcomes (``--history``) and the exit policy (``--fail-on``, ``--fail-after``)."""
