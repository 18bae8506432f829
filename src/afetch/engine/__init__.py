"""What speaks HTTP, behind one seam (``base``): libcurl, the httpx adapter, and what they share."""
