"""Configuration validation: every bad key fails before anything runs, naming the key (exit 2)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator import config
from orchestrator.errors import ConfigError

TEMPLATE = (Path(config.__file__).parent / "templates" / "init" / "imagefleet.toml").read_text()


def load_text(tmp_path: Path, text: str) -> config.Settings:
    path = tmp_path / "imagefleet.toml"
    path.write_text(text)
    return config.load(path)


def test_init_template_is_valid_and_typed(tmp_path: Path) -> None:
    s = load_text(tmp_path, TEMPLATE)
    fam = s.family("demo")
    assert fam.regions == ("us-east-1", "us-west-2") and fam.architecture == "x86_64"
    assert fam.template == tmp_path / "packer" / "demo.pkr.hcl"
    assert s.stages["candidate"].accounts == ("111111111111",)
    assert s.friends["payments"].families == ("demo",)
    assert s.state.path == tmp_path / ".imagefleet" / "state.db"
    assert fam.build_timeout == 1200


def test_defaults_apply_to_a_minimal_file(tmp_path: Path) -> None:
    s = load_text(
        tmp_path,
        '[families.web]\nos = "debian-12"\ntemplate = "t.json"\nsource_ami = "ami-0abc1234"\n',
    )
    fam = s.family("web")
    assert fam.regions == ("us-east-1",) and fam.cohort_instance_types == ("t3.micro",)
    assert s.aws.max_attempts == config.DEFAULTS["aws"]["max_attempts"]


def test_a_parent_named_by_an_ssm_public_parameter(tmp_path: Path) -> None:
    name = "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"
    s = load_text(
        tmp_path,
        f'[families.web]\nos = "ubuntu-24.04"\ntemplate = "t.json"\nsource_parameter = "{name}"\n',
    )
    fam = s.family("web")
    assert (fam.source_parameter, fam.source_ami, fam.source_filter) == (name, None, None)
    assert load_text(tmp_path, TEMPLATE).family("demo").source_parameter is None
    for bad in ("/imagefleet/web/release", "aws/service/x", "/aws/service/", "/aws/service/a b"):
        with pytest.raises(ConfigError, match=r"families\.web\.source_parameter"):
            load_text(
                tmp_path,
                f'[families.web]\nos = "x"\ntemplate = "t.json"\nsource_parameter = "{bad}"\n',
            )


# (replace this, with that, expected key in the message)
BAD = [
    ('regions = ["us-east-1", "us-west-2"]', 'regions = ["us-east-1", "mars-1"]', "aws.regions"),
    ('regions = ["us-east-1", "us-west-2"]', "regions = []", "aws.regions"),
    ('endpoint_url = "local"', 'endpoint_url = "ftp://x"', "aws.endpoint_url"),
    (
        'artifact_bucket = "imagefleet-artifacts"',
        'artifact_bucket = "Bad_Bucket"',
        "aws.artifact_bucket",
    ),
    ('backend = "sqlite"', "backend = 3", "state.backend"),
    ('architecture = "x86_64"', 'architecture = "sparc"', "families.demo.architecture"),
    ('os = "ubuntu-24.04"\n', "", "families.demo.os"),
    ('template = "packer/demo.pkr.hcl"\n', "", "families.demo.template"),
    ("source_filter = {", 'source_ami = "ami-0abc1234"\nsource_filter = {', "families.demo"),
    (
        'source_filter = { name = "ubuntu/images/hvm-ssd/ubuntu-*-amd64-server-*", owners = '
        '["099720109477"] }\n',
        "",
        "families.demo",
    ),
    ("source_filter = {", 'source_ami = "not-an-ami"\nxsource_filter = {', "families.demo"),
    (
        'regions = ["us-east-1", "us-west-2"]\ncohort',
        'regions = ["eu-west-1"]\ncohort',
        "families.demo.regions",
    ),
    (
        'cohort_instance_types = ["t3.micro", "m5.large", "c5.large", "r5.large"]',
        'cohort_instance_types = ["large"]',
        "families.demo.cohort_instance_types",
    ),
    ('build_timeout = "20m"', 'build_timeout = "soon"', "families.demo.build_timeout"),
    ('build_timeout = "20m"', 'build_timeout = "20m"\ncolour = "blue"', "families.demo"),
    ("[families.demo]", "[families.Demo_Bad]", "families.Demo_Bad"),
    ('accounts = ["111111111111"]', 'accounts = ["1111"]', "stages.candidate.accounts"),
    ("[stages.release]", '[stages.release]\nous = ["engineering"]', "stages.release.ous"),
    ("[stages.release]", "[stages.prod]", "stages.prod"),
    ('families = ["demo"]', 'families = ["nope"]', "friends.payments.families"),
    ('accounts = ["333333333333"]', 'accounts = "333333333333"', "friends.payments.accounts"),
    ('release = ["arn:aws:*::123456789012:*"]', 'release = "me"', "promoters.release"),
    ("[promoters]", '[promoters]\ncandidate = ["x"]', "promoters"),
    ("[state]", "[stat]\n[state]", "stat"),
]


@pytest.mark.parametrize(
    ("old", "new", "key"), BAD, ids=[b[2] + f"-{i}" for i, b in enumerate(BAD)]
)
def test_each_bad_key_is_named(tmp_path: Path, old: str, new: str, key: str) -> None:
    assert old in TEMPLATE, old
    with pytest.raises(ConfigError) as err:
        load_text(tmp_path, TEMPLATE.replace(old, new, 1))
    message = str(err.value)
    assert key in message, message
    assert "expected" in message or "unknown" in message, message
    assert err.value.exit_code == 2


def test_error_points_at_the_line(tmp_path: Path) -> None:
    text = TEMPLATE.replace('architecture = "x86_64"', 'architecture = "sparc"')
    with pytest.raises(ConfigError) as err:
        load_text(tmp_path, text)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "sparc" in ln)
    assert re.search(rf"imagefleet.toml:{line}\b", str(err.value)), str(err.value)


def test_not_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_text(tmp_path, "[aws\nregions = 1")


def test_finding_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IMAGEFLEET_CONFIG", raising=False)
    with pytest.raises(ConfigError, match=r"no imagefleet\.toml found"):
        config.find_config()
    (tmp_path / "imagefleet.toml").write_text(TEMPLATE)
    assert config.find_config() == tmp_path / "imagefleet.toml"
    monkeypatch.setenv("IMAGEFLEET_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="IMAGEFLEET_CONFIG"):
        config.find_config()


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("24h", 86400), ("7d", 604800)]
)
def test_durations(text: str, seconds: int) -> None:
    assert config.parse_duration(text) == seconds
