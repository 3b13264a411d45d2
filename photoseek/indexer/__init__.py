"""The bulk indexer: find -> decode -> embed -> write, each stage a plain callable over dict batches."""
