"""Adapters from the sans-IO fakes (fake_apns, fake_fcm) to the edge `Service` contract."""
