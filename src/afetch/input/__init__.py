"""Where URLs come from: sources read lazily, the --state journal, --shard."""
