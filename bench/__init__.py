"""The Annals benchmark: ``python -m bench``.

Generates a deterministic, OpenStack-shaped data set, loads it into Annals (over real HTTP and
through ``annals import``) and optionally into reference Panko 10.0.0, then measures query
latency, throughput and API worker memory over real HTTP. See ``python -m bench --help``.
"""
