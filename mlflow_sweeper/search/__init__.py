"""The search: what a sweep may try and in which order.

`space` parses the parameters (grid axes, ranges, conditions) and decodes grid points by index;
`sensitivity` is the one-at-a-time plan and its spread; `algorithms` holds one class per
algorithm behind `Algorithm`, found by name in its registry, and `PointSource`, what the
coordination asks of the sweep's algorithm. Nothing here imports the config package: the config
asks the search, never the other way round.
"""
