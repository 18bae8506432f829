"""One attempt at a URL: redirects, the body, --include, --save-dir, --hash."""
