"""Request policy: what a request may contain and where it may go (PII redaction, data classes)."""
