"""The ``segscope`` command line: thin commands over the Python API."""
