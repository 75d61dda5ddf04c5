"""`prrmse <verb>`: the only place verbs are registered. Each wrapper reads values from the
config file and paths from the command line and calls one library function.

May import every other part of prrmse; nothing imports it.
"""
