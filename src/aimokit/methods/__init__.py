"""Training methods: one module per method, each registered (registry.METHODS) with what it reads, which of the
kit's settings it hands to its TRL config, its own checks, and how it builds its TRL trainer. `train.py` runs
whichever `method` names; a new method is one module here (and its section, named after it, in TrainConfig).
"""
