"""Fault injection: rules that make the fakes misbehave on purpose, deterministically.

`rules` parses and validates rule JSON, `engine` matches requests and decides (sans-IO: inputs and a
clock reading in, a decision out, a seeded RNG per rule), `actions` turns a decision into the
`Reply` the edge engines already understand, `hook` holds a server's rules and answers for one
request, and `service.FaultingService` puts them in front of any edge service.
"""
from .engine import Decision, FaultEngine, RequestView
from .hook import Faults, Modifier
from .rules import Action, Rule, RuleError, Scope, Trigger, parse_rule
from .service import FaultingService

__all__ = ["Action", "Decision", "FaultEngine", "FaultingService", "Faults", "Modifier", "RequestView", "Rule",
           "RuleError", "Scope", "Trigger", "parse_rule"]
