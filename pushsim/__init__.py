"""pushsim: a push-notification test bench — fake APNs, fake FCM, a simulated device fleet."""
__version__ = "0.1.0"
