import argparse
import re
import sys
import types
from pathlib import Path

import pytest

from pushsim import cli
from pushsim.config import Config


def _config(argv: list[str], env: dict[str, str] | None = None) -> Config:
    args = cli.build_parser().parse_args(["serve", *argv])
    return cli.config_from_args(args, env or {})


def test_every_config_field_is_a_flag():
    help_text = cli.build_parser()._subparsers._group_actions[0].choices["serve"].format_help()
    for name in Config.field_names():
        assert "--" + name.replace("_", "-") in help_text
        assert Config.env_name(name) in help_text


def test_defaults_then_env_then_flag():
    assert _config([]) == Config()
    env = {"PUSHSIM_APNS_PORT": "3000", "PUSHSIM_STATE_DIR": "/tmp/x", "PUSHSIM_THROTTLE_ON_REJECT": "yes",
           "PUSHSIM_DEVICES": "ios=1,android=2"}
    c = _config([], env)
    assert (c.apns_port, c.state_dir, c.throttle_on_reject, c.devices) == (3000, Path("/tmp/x"), True, "ios=1,android=2")
    c = _config(["--apns-port", "0", "--no-throttle-on-reject", "--devices", "7"], env)
    assert (c.apns_port, c.throttle_on_reject, c.devices) == (0, False, "7")


@pytest.mark.parametrize("argv, env, needle", [
    (["--devices", "ios=x"], {}, "--devices"),
    (["--devices", "mac=3"], {}, "--devices"),
    (["--apns-port", "70000"], {}, "--apns-port"),
    (["--clock", "scaled:0"], {}, "--clock"),
    (["--clock", "scaled:abc"], {}, "--clock"),
    (["--environment", "staging"], {}, "--environment"),
    (["--max-streams", "0"], {}, "--max-streams"),
    ([], {"PUSHSIM_THROTTLE_ON_REJECT": "maybe"}, "PUSHSIM_THROTTLE_ON_REJECT"),
    ([], {"PUSHSIM_ADMIN_PORT": "http"}, "PUSHSIM_ADMIN_PORT"),
])
def test_bad_values_are_usage_errors_naming_the_setting(argv, env, needle):
    with pytest.raises(cli.UsageError, match=needle):
        _config(argv, env)


def test_good_clock_values():
    assert _config(["--clock", "scaled:60"]).clock == "scaled:60"
    assert _config(["--clock", "scaled:0.5"]).clock == "scaled:0.5"


def test_main_returns_2_with_message(capsys):
    assert cli.main(["serve", "--devices", "bad"]) == 2
    assert "bad value 'bad'" in capsys.readouterr().err
    assert cli.main([]) == 2


def test_command_modules_register_themselves(monkeypatch, capsys):
    mod = types.ModuleType("pushsim.cli.stats")

    def register(sub):
        p = sub.add_parser("stats")
        p.add_argument("--n", type=int, default=1)
        p.set_defaults(func=lambda args: print("stats", args.n) or 5)

    mod.register = register
    monkeypatch.setitem(sys.modules, "pushsim.cli.stats", mod)
    assert cli.main(["stats", "--n", "3"]) == 5
    assert capsys.readouterr().out == "stats 3\n"


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    return cli.build_parser()._subparsers._group_actions[0].choices


@pytest.mark.parametrize("command", sorted(_subparsers()))
def test_every_flag_has_help_an_env_var_and_its_default_once(command):
    parser = _subparsers()[command]
    assert parser.description, f"{command} has no description"
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue                                     # positionals and -h
        flag = action.option_strings[0]
        text = action.help or ""
        env = re.search(r"\[env (PUSHSIM_[A-Z0-9_]+)", text)
        assert env, f"{command} {flag}: no environment variable in {text!r}"
        assert text.lower().count("default") <= 1, f"{command} {flag}: default shown twice: {text!r}"
        if action.default not in (None, False):
            assert f"default {action.default}" in text, f"{command} {flag}: default not shown: {text!r}"


@pytest.mark.parametrize("command, argv, env, dest, want", [
    ("replay", ["j.jsonl"], {"PUSHSIM_REPLAY_SEED": "7", "PUSHSIM_REPLAY_JSON": "1"}, ("seed", "json"), (7, True)),
    ("run", ["s.toml"], {"PUSHSIM_RUN_MAX_REQUESTS": "5"}, ("max_requests",), ("5",)),
    ("push", ["t", "f"], {"PUSHSIM_PUSH_TYPE": "voip", "PUSHSIM_ENDPOINTS": "e.json"}, ("push_type", "endpoints"),
     ("voip", "e.json")),
    ("stats", [], {"PUSHSIM_STATS_JSON": "yes"}, ("json",), (True,)),
    ("serve", [], {"PUSHSIM_APNS_PORT": "1"}, ("apns_port",), (None,)),   # config: read by config_from_args
])
def test_every_command_honours_its_env_vars_and_the_flag_wins(monkeypatch, command, argv, env, dest, want):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    args = cli.build_parser().parse_args([command, *argv])
    assert tuple(getattr(args, d) for d in dest) == want
    if command == "replay":
        assert cli.build_parser().parse_args(["replay", "j", "--seed", "9"]).seed == 9


def test_every_config_field_has_help():
    from pushsim.cli.config_flags import HELP
    assert set(Config.field_names()) <= set(HELP)


def test_scenario_goes_to_config_extra(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text("duration = 1\n")
    assert _config(["--scenario", str(f)]).extra == {"scenario": str(f)}
    assert _config([], {"PUSHSIM_SCENARIO": str(f)}).extra == {"scenario": str(f)}
    with pytest.raises(cli.UsageError, match="--scenario"):
        _config(["--scenario", str(tmp_path / "missing.toml")])
