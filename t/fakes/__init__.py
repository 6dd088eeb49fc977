"""Strict fakes of what lives outside a company: the model provider, the IdP,
the OTLP collector. Each checks what it receives and records it for tests."""
