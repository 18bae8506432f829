"""What leaves afetch: records to their sinks, and what a person sees on stderr."""
