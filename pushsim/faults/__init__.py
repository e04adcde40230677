"""Fault injection: rules that make the fakes misbehave on purpose, deterministically.

`rules` parses and validates rule JSON, `engine` matches requests and decides (sans-IO: inputs and a
clock reading in, a decision out, a seeded RNG per rule), `actions` turns a decision into the
`Reply` the edge engines already understand, and `hook` is the glue the services call.
"""
from .engine import Decision, FaultEngine, RequestView
from .hook import Faults
from .rules import Action, Rule, RuleError, Scope, Trigger, parse_rule

__all__ = ["Action", "Decision", "FaultEngine", "Faults", "RequestView", "Rule", "RuleError", "Scope", "Trigger",
           "parse_rule"]
