"""The ``omniroute`` commands: the command line, the rules commands, replay,
customer import and the worker supervisor.

This package may import any part of the service; nothing in the service
imports it.
"""
