"""Benchmarks of the newsletter service against what a user would use instead.

``python -m bench`` (quick) or ``python -m bench --full``; see ``bench/README.md``.
"""
