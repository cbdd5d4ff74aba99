"""Operations: Prometheus metrics (counters in the code paths, gauges read from the database).

``instruments`` sits at the bottom of the layers (anything may count); ``collector`` reads the
models at scrape time; ``exposition`` turns both into the text format for ``/metrics`` and for
the worker's own port.
"""
