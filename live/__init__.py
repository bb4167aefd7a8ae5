"""The live side: strategies on ticks, instances and their reconciler, venues, sources and stream
pipelines (see README.md)."""
