"""The APNs provider API as pure functions: a request and a clock reading in, a decision out.

No sockets and no event loop here; `pushsim.services.apns` glues these rules to the edge engines,
the fleet and the dispatcher.
"""
