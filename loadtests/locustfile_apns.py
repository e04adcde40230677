"""APNs load: `locust -f loadtests/locustfile_apns.py --headless -u 50 -r 50 -t 1m` (see docs/loadtests.md)."""
from loadtests import common  # noqa: F401  - options, token ranges, CI gates
from loadtests.apns_user import ApnsUser  # noqa: F401
