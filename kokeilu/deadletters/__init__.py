"""Dead-letter tooling for operators: `python -m kokeilu.deadletters list|show|redrive`.

kokeilu/deadletters/library.py does the work; __main__.py is its command line. The runbook is
docs/operations.md, "Dead letters: read, fix, redrive".
"""
