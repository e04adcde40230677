"""Simulated device fleet: installs, OS delivery policies, clocks, dispatch and accounting.

Knows nothing of HTTP: the fakes hand it `Notification`s, it decides what each device does.
"""
