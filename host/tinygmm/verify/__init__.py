"""Proving a device computes what the host computes: test vectors, the comparison, the session, the report."""
