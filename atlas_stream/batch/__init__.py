"""Batch adapters: files and database tables scored on Arrow record batches into the lake."""
