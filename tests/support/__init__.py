"""Helpers shared by the tests: plain functions, classes and constants, one
module per kind of thing. Fixtures stay in ``conftest.py``; a test module
imports helpers from here, never from another test module."""
