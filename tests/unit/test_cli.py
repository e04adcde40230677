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


def test_optional_command_modules_register_themselves(monkeypatch, capsys):
    mod = types.ModuleType("pushsim.cmd_stats")

    def register(sub):
        p = sub.add_parser("stats")
        p.add_argument("--n", type=int, default=1)
        p.set_defaults(func=lambda args: print("stats", args.n) or 5)

    mod.register = register
    monkeypatch.setitem(sys.modules, "pushsim.cmd_stats", mod)
    assert cli.main(["stats", "--n", "3"]) == 5
    assert capsys.readouterr().out == "stats 3\n"


def test_scenario_goes_to_config_extra(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text("duration = 1\n")
    assert _config(["--scenario", str(f)]).extra == {"scenario": str(f)}
    assert _config([], {"PUSHSIM_SCENARIO": str(f)}).extra == {"scenario": str(f)}
    with pytest.raises(cli.UsageError, match="--scenario"):
        _config(["--scenario", str(tmp_path / "missing.toml")])
