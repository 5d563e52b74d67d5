"""Command-line tools that run in their own short-lived process: ``ipytui list``,
``stop``, ``recover``, ``kernelspec`` and ``keys``.
"""
