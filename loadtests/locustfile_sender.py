"""Sender under test, end to end: `locust -f loadtests/locustfile_sender.py --sut-url URL ...`."""
from loadtests import common  # noqa: F401  - options, token ranges, CI gates
from loadtests.sender_user import SenderUser  # noqa: F401
