"""libcurl's result codes as afetch's errors: the error type, afetch's words, then libcurl's."""

from __future__ import annotations

from afetch._errors import AfetchError, BadResponse

#: libcurl result codes → (afetch error type, what happened in afetch's words), after
#: libcurl-errors(3). libcurl's own message says more and follows when it has one; a code
#: missing here is "other".
_ERRORS = {
    # UNSUPPORTED_PROTOCOL: the fetcher lets only http(s) URLs through, so this is a reply that
    # is not HTTP at all ("Received HTTP/0.9 when not allowed").
    1: ("protocol", "the reply is not HTTP"),
    3: ("invalid_url", "the URL is malformed"),
    5: ("proxy", "the proxy's name could not be resolved"),
    6: ("dns", "the host name could not be resolved"),
    7: ("connect", "the connection could not be made"),
    8: ("protocol", "the server's reply is malformed"),
    16: ("protocol", "HTTP/2 framing error"),
    18: ("protocol", "body shorter than its Content-Length"),
    23: ("other", "the body could not be passed on"),  # WRITE_ERROR: a callback refused it
    28: ("timeout", "timed out"),
    35: ("tls", "the TLS handshake failed"),
    47: ("too_many_redirects", "too many redirects"),
    52: ("reset", "the server closed the connection without replying"),  # GOT_NOTHING
    55: ("reset", "sending the request failed"),
    56: ("reset", "receiving the response failed"),  # after the head: truncated, see _error
    58: ("tls", "the client certificate is unusable"),
    59: ("tls", "no usable TLS cipher"),
    60: ("tls", "the server's certificate could not be verified"),
    61: ("protocol", "the body's Content-Encoding is unknown or its data corrupt"),
    63: ("too_large", "the body is over the size limit"),
    77: ("tls", "the CA bundle could not be read"),
    80: ("tls", "the TLS shutdown failed"),
    83: ("tls", "the certificate's issuer check failed"),
    90: ("tls", "the server's public key does not match the pinned one"),
    91: ("tls", "the certificate status is invalid"),
    92: ("protocol", "HTTP/2 stream error"),
    95: ("protocol", "HTTP/3 error"),
    96: ("connect", "the QUIC connection could not be made"),
    97: ("proxy", "the proxy refused the handshake"),
    100: ("protocol", "the response headers are too large"),  # TOO_LARGE
}
#: libcurl 8 reports response headers over its limit (300 KB in all) as a receive error (56),
#: one header over 100 KB as TOO_LARGE (100): both are the server breaking HTTP, not a reset.
_HEADERS_TOO_LARGE = "Too large response headers"


class BadHeader(AfetchError):
    """A request header that cannot be sent as one header line."""


class CurlError(AfetchError):
    """A transfer failed inside libcurl; ``error_type`` comes from its result code."""

    def __init__(self, code: int, message: str, error_type: str) -> None:
        super().__init__(message)
        self.code = code
        self.error_type = error_type


def _error(code: int, message: str, *, head_seen: bool, at_proxy: bool = False) -> AfetchError:
    kind, words = _ERRORS.get(code, ("other", ""))
    if at_proxy:
        kind = "proxy"
    elif message.startswith(_HEADERS_TOO_LARGE):
        kind, words = _ERRORS[100]
    # afetch's words, then libcurl's: never a bare "libcurl error 100".
    text = f"{words}: {message}" if words and message else words or message
    text = text or f"libcurl error {code}"
    if head_seen and kind == "reset":
        # The head had arrived: the body was cut short, as afetch reports it on every engine,
        # or its chunked framing broken (libcurl's receive error for both).
        if "chunk" in message:
            return BadResponse(f"malformed chunked body: {message}")
        return BadResponse(f"body cut short: {text}")
    return CurlError(code, text, kind)
