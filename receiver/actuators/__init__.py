"""Actuators: what turns an action into work somewhere else (a Jenkins build, a Kubernetes Job).

`base.py` holds the protocol the dispatcher talks to; each kind has its own module, chosen per
rule with `actuator:` (default `jenkins`).
"""
