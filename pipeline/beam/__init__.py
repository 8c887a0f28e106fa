"""The Beam jobs' shared parts: runners, Parquet schemas and shards, input accounting."""
