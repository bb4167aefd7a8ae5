"""A strategy module's bars through the paper venue: shared by the live engine and pipelines."""
