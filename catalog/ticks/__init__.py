"""Tick (order-book) datasets: storage as catalog versions and converters from exchange dumps."""
