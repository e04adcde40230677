"""Scale-out beyond one machine (issue 16): configuration for the engines in front of and beside N
partitioned `pushsim serve` instances — HAProxy routing on the token, Prometheus scraping each one.

Sans-IO text generation only; `pushsim proxy-config` (pushsim/cli/proxy_config.py) reads the inputs
and writes the files. See docs/scale-out.md.
"""
