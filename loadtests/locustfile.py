"""APNs and FCM users together (equal weight); pick one with its class name on the command line."""
from loadtests import common  # noqa: F401  - options, token ranges, CI gates
from loadtests.apns_user import ApnsUser  # noqa: F401
from loadtests.fcm_user import FcmUser  # noqa: F401
