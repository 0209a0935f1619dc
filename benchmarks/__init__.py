"""Speed benchmarks of sortgpt, each measuring its contenders side by side in one process.

``python -m benchmarks.run all`` rewrites ``benchmarks/RESULTS.md``; see ``benchmarks/run.py``.
"""
