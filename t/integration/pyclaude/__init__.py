"""pyclaude: the integration harness of mod_claude, after mod_md/mod_h2's pyhttpd."""
