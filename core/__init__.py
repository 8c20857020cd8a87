"""The bottom layer: what every app builds on, importing none of them.

Environment parsing, key files and the keyring, the encrypted field, the network policy,
request context, logging and redaction, metric objects and their endpoint, TLS helpers and
the channel layer. A low layer with news for a higher one sends a signal (for example
``core.network.network_refused``, which the audit app records). See docs/architecture.md.
"""
