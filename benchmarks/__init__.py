"""Benchmarks of the bridge against a baseline measured in the same run.

Run from the repository root: ``python -m benchmarks.forward`` and
``python -m benchmarks.rpc`` (see benchmarks/README.rst).
"""
