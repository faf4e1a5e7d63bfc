"""Every class of bad input in docs/bad-input.md: one ``error:`` line, exit 2, nothing changed.

Each case runs the real command through ``raw_main`` in a fresh ``imagefleet init`` workspace
whose state store exists, and checks the store and state directory are unchanged afterwards.
docs/bad-input.md lists these cases by id (``test_docs_list_every_case`` keeps the two in step).
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from bad_input_support import Workspace, assert_clean_refusal

from orchestrator import config
from perf import config as perf_config

DOCS = Path(__file__).resolve().parents[2] / "docs" / "bad-input.md"
LONG = "a" * 100_000
JSON_OK = '{"metrics": {"latency_ms": [10.0, 10.2, 9.9, 10.1, 10.0]}}'
CSV_OK = "metric,value,unit,instance_type,arm\n" + "".join(
    f"cpu_time,{1 + i / 100},s,m5.large,candidate\n" for i in range(12)
)


# A changelog.Debian.gz as gzip writes it, of the init template's openssl changelog, and a manifest
# that upgrades openssl to the version at its top, so the diff must read that changelog.
_INIT = Path(config.__file__).parent / "templates" / "init"
OPENSSL_GZ = gzip.compress(
    (_INIT / "changelogs" / "openssl.changelog.Debian").read_bytes(), mtime=0
)
NEW_MANIFEST = (
    (_INIT / "demo.manifest")
    .read_bytes()
    .replace(b"openssl\t3.0.13-0ubuntu3.1", b"openssl\t3.0.13-0ubuntu3.4")
)


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]  # {ws} is the workspace directory
    needle: str  # in the one error line
    config: tuple[str, str] | None = None  # replace this with that in imagefleet.toml
    files: dict[str, bytes] = field(default_factory=dict)  # written into the workspace first


def cfg(
    case_id: str, old: str, new: str, needle: str, argv: tuple[str, ...] = ("iam-policy",)
) -> Case:
    return Case(case_id, argv, needle, config=(old, new))


# init's source line, whole: a case that replaces it leaves the family no other source
INIT_SOURCE = (
    'source_filter = { name = "ubuntu/images/hvm-ssd/ubuntu-*-amd64-server-*", owners = '
    '["099720109477"] }'
)
GATES = ("run", "demo", "--dry-run")  # reads [gates] (pipelines/config.py)
CANARY = ("iam-policy",)  # loads [canary] too (the policy scopes its Auto Scaling groups)
CASES = [
    # --- the config file ------------------------------------------------------------------------
    Case(
        "config-not-utf8",
        ("status",),
        "not UTF-8",
        files={"imagefleet.toml": b'[aws]\nregions = ["\xff"]\n'},
    ),
    cfg("config-not-toml", "[state]", "[state", "not valid TOML"),
    cfg("config-huge-integer", 'backend = "sqlite"', "backend = " + "9" * 5000, "not valid TOML"),
    cfg(
        "config-deep-nesting",
        'backend = "sqlite"',
        "backend = " + "[" * 5000 + "]" * 5000,
        "not valid TOML",
    ),
    cfg("config-unknown-section", "[state]", "[stat]\n[state]", "stat: expected one of the keys"),
    cfg(
        "config-unknown-key",
        'artifact_bucket = "imagefleet-artifacts"',
        'artifact_bucket = "imagefleet-artifacts"\ncolour = 1',
        "aws.colour",
    ),
    cfg(
        "max-attempts-inf",
        'artifact_bucket = "imagefleet-artifacts"',
        'artifact_bucket = "imagefleet-artifacts"\nmax_attempts = inf',
        "aws.max_attempts: expected an integer",
    ),
    cfg(
        "max-attempts-nan",
        'artifact_bucket = "imagefleet-artifacts"',
        'artifact_bucket = "imagefleet-artifacts"\nmax_attempts = nan',
        "aws.max_attempts",
    ),
    cfg(
        "max-attempts-zero",
        'artifact_bucket = "imagefleet-artifacts"',
        'artifact_bucket = "imagefleet-artifacts"\nmax_attempts = 0',
        "aws.max_attempts",
    ),
    cfg(
        "max-attempts-float",
        'artifact_bucket = "imagefleet-artifacts"',
        'artifact_bucket = "imagefleet-artifacts"\nmax_attempts = 2.5',
        "aws.max_attempts",
    ),
    cfg(
        "max-retry-seconds-negative",
        'artifact_bucket = "imagefleet-artifacts"',
        'artifact_bucket = "imagefleet-artifacts"\nmax_retry_seconds = -1',
        "aws.max_retry_seconds",
    ),
    cfg("soak-overflow", 'soak = "5m"', 'soak = "99999999999999d"', "gates.release.soak", GATES),
    cfg("soak-over-a-year", 'soak = "5m"', 'soak = "400d"', "up to 366d", GATES),
    cfg("soak-negative", 'soak = "5m"', 'soak = "-1h"', "gates.release.soak", GATES),
    cfg("soak-unicode-digits", 'soak = "5m"', 'soak = "٢٤h"', "gates.release.soak", GATES),
    cfg(
        "build-timeout-zero",
        'build_timeout = "20m"',
        'build_timeout = "0s"',
        "families.demo.build_timeout",
    ),
    cfg(
        "region-unknown-shape",
        'regions = ["us-east-1", "us-west-2"]\nendpoint',
        'regions = ["us-east-1", "mars-1"]\nendpoint',
        "aws.regions",
    ),
    cfg(
        "region-trailing-newline",
        'regions = ["us-east-1", "us-west-2"]\nendpoint',
        'regions = ["us-east-1", "us-west-2\\n"]\nendpoint',
        "aws.regions",
    ),
    cfg(
        "regions-empty",
        'regions = ["us-east-1", "us-west-2"]\nendpoint',
        "regions = []\nendpoint",
        "aws.regions",
    ),
    cfg("family-name-pattern", "[families.demo]", "[families.Demo_Bad]", "families.Demo_Bad"),
    cfg("family-name-path", "[families.demo]", '[families."../../etc"]', "a family name"),
    cfg("family-name-long", "[families.demo]", f'[families."{LONG}"]', "characters)"),
    cfg(
        "image-test-ssm-without-command",
        'build_timeout = "20m"',
        'build_timeout = "20m"\ntests = [{ name = "up", type = "ssm" }]',
        "families.demo.tests[0].command: expected a command for type 'ssm'",
        ("test", "demo:1"),
    ),
    cfg("team-name-path", "[friends.payments]", '[friends."../../etc"]', "a team name"),
    cfg("team-name-whitespace", "[friends.payments]", '[friends."pay ments"]', "a team name"),
    cfg("team-name-newline", "[friends.payments]", '[friends."payments\\n"]', "a team name"),
    cfg("team-name-control", "[friends.payments]", '[friends."pay\\u0007"]', "a team name"),
    cfg(
        "account-short",
        'accounts = ["333333333333"]',
        'accounts = ["3333"]',
        "friends.payments.accounts",
    ),
    cfg(
        "account-unicode-digits",
        'accounts = ["333333333333"]',
        'accounts = ["٣٣٣٣٣٣٣٣٣٣٣٣"]',
        "friends.payments.accounts",
    ),
    cfg(
        "ou-shape",
        "[stages.release]",
        '[stages.release]\nous = ["engineering"]',
        "stages.release.ous",
    ),
    # [accounts.NAME]: member accounts (orchestrator/config.py)
    cfg(
        "member-account-id",
        "[stages.release]",
        '[accounts.prod]\nid = "2222"\nrole = "arn:aws:iam::222222222222:role/m"\n[stages.release]',
        "accounts.prod.id",
    ),
    cfg(
        "member-role-other-account",
        "[stages.release]",
        '[accounts.prod]\nid = "222222222222"\nrole = "arn:aws:iam::333333333333:role/m"\n'
        "[stages.release]",
        "accounts.prod.role: expected a role in the account itself",
    ),
    cfg(
        "member-role-not-arn",
        "[stages.release]",
        '[accounts.prod]\nid = "222222222222"\nrole = "imagefleet-member"\n[stages.release]',
        "accounts.prod.role",
    ),
    cfg(
        "member-session-long",
        "[stages.release]",
        '[accounts.prod]\nid = "222222222222"\nrole = "arn:aws:iam::222222222222:role/m"\n'
        'session_duration = "13h"\n[stages.release]',
        "accounts.prod.session_duration",
    ),
    Case("member-account-unknown", ("accounts", "check", "--accounts", "nope"), "unknown account"),
    cfg(
        "endpoint-scheme", 'endpoint_url = "local"', 'endpoint_url = "ftp://x"', "aws.endpoint_url"
    ),
    cfg(
        "endpoint-whitespace",
        'endpoint_url = "local"',
        'endpoint_url = "http://a b"',
        "aws.endpoint_url",
    ),
    cfg(
        "bucket-name",
        'artifact_bucket = "imagefleet-artifacts"',
        'artifact_bucket = "Bad_Bucket"',
        "aws.artifact_bucket",
    ),
    cfg("state-backend", 'backend = "sqlite"', 'backend = "postgres"', "state.backend"),
    cfg("state-path-control", 'path = ".imagefleet/state.db"', 'path = "a\\u0000b"', "state.path"),
    cfg(
        "source-both",
        "source_filter = {",
        'source_ami = "ami-0abc1234"\nsource_filter = {',
        "exactly one",
    ),
    cfg(
        "source-parameter-and-filter",
        "source_filter = {",
        'source_parameter = "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/'
        'ebs-gp3/ami-id"\nsource_filter = {',
        "exactly one",
    ),
    cfg(
        "source-parameter-shape",
        INIT_SOURCE,
        'source_parameter = "/imagefleet/demo/release"',
        "families.demo.source_parameter: expected an SSM public parameter name",
    ),
    cfg(
        "source-parameter-space",
        INIT_SOURCE,
        'source_parameter = "/aws/service/canonical/x y"',
        "families.demo.source_parameter",
    ),
    cfg(
        "source-ami-shape",
        "source_filter = {",
        'source_ami = "ami-XYZ"\nxsource_filter = {',
        "families.demo",
    ),
    cfg(
        "instance-type-shape",
        'cohort_instance_types = ["t3.micro", "m5.large", "c5.large", "r5.large"]',
        'cohort_instance_types = ["large"]',
        "families.demo.cohort_instance_types",
    ),
    cfg(
        "variable-nan",
        'build_timeout = "20m"',
        'build_timeout = "20m"\nvariables = { size = nan }',
        "families.demo.variables.size",
    ),
    cfg(
        "variable-name",
        'build_timeout = "20m"',
        'build_timeout = "20m"\nvariables = { "a b" = 1 }',
        "families.demo.variables",
    ),
    cfg(
        "gate-unknown",
        'require = ["image_tests"]',
        'require = ["image_tests", "vibes"]',
        "gates.candidate.require",
        GATES,
    ),
    cfg(
        "gate-stage",
        "[gates.candidate]",
        "[gates.unstable]\nrequire = []\n[gates.candidatex]",
        "gates.unstable",
        GATES,
    ),
    cfg(
        "promoters-shape",
        'release = ["arn:aws:*::123456789012:*"]',
        'release = "me"',
        "promoters.release",
    ),
    cfg(
        "friend-family-unknown",
        'families = ["demo"]',
        'families = ["nope"]',
        "friends.payments.families",
    ),
    # --- [canary] (loaded by the commands that need it)
    # --------------------------------------------
    cfg(
        "canary-threshold-nan",
        "[promoters]",
        "[canary]\npass_threshold = nan\n[promoters]",
        "canary.pass_threshold",
    ),
    cfg(
        "canary-threshold-inf",
        "[promoters]",
        "[canary]\nmarginal_threshold = inf\n[promoters]",
        "canary.marginal_threshold",
    ),
    cfg(
        "canary-marginal-above-pass",
        "[promoters]",
        "[canary]\nmarginal_threshold = 99\n[promoters]",
        "canary.marginal_threshold",
    ),
    cfg("canary-waves", "[promoters]", "[canary]\nwaves = [1, 0.5]\n[promoters]", "canary.waves"),
    cfg("canary-period", "[promoters]", '[canary]\nperiod = "7s"\n[promoters]', "canary.period"),
    cfg(
        "canary-statistic",
        "[promoters]",
        '[[canary.metrics]]\nname = "lat"\nstatistic = "p99"\n[promoters]',
        "canary.metrics[0].statistic",
    ),
    cfg(
        "canary-metric-name-newline",
        "[promoters]",
        '[[canary.metrics]]\nname = "lat\\n"\n[promoters]',
        "canary.metrics[0].name",
    ),
    cfg(
        "canary-tolerance-inf",
        "[promoters]",
        "[canary]\ntolerance = inf\n[promoters]",
        "canary.tolerance",
    ),
    cfg("canary-unknown-key", "[promoters]", "[canary]\nbogus = 1\n[promoters]", "canary.bogus"),
    cfg(
        "canary-group-weight-nan",
        "[promoters]",
        "[canary]\ngroup_weights = { latency = nan }\n[promoters]",
        "canary.group_weights.latency",
    ),
    # --- command-line options and arguments
    # ---------------------------------------------------------
    Case(
        "port-out-of-range",
        ("local", "up", "--port", "99999"),
        "--port: expected an integer in [1, 65535]",
    ),
    Case("port-negative", ("local", "up", "--port", "-1"), "--port"),
    Case("factor-nan", ("local", "inject", "--ami", "ami-0abc1234", "--factor", "nan"), "--factor"),
    Case("factor-inf", ("local", "inject", "--ami", "ami-0abc1234", "--factor", "inf"), "--factor"),
    Case(
        "factor-missing",
        ("local", "inject", "--ami", "ami-0abc1234"),
        "--factor: required unless --clear",
    ),
    Case("inject-ami-shape", ("local", "inject", "--ami", "../x", "--factor", "2"), "--ami"),
    Case("boot-timeout-negative", ("test", "demo:1", "--boot-timeout", "-5"), "--boot-timeout"),
    Case(
        "junit-unwritable", ("test", "demo:1", "--junit", "{ws}/imagefleet.toml/out.xml"), "--junit"
    ),
    Case("junit-is-directory", ("test", "demo:1", "--junit", "{ws}"), "--junit"),
    Case(
        "team-arg-path",
        ("friends", "add", "../../etc", "--account", "111111111111"),
        "TEAM: expected a team",
    ),
    Case("team-arg-newline", ("friends", "add", "payments\n", "--account", "111111111111"), "TEAM"),
    Case("team-arg-long", ("friends", "add", LONG, "--account", "111111111111"), "characters)"),
    Case("account-arg-short", ("friends", "add", "web", "--account", "12345"), "--account"),
    Case("account-arg-unicode", ("friends", "add", "web", "--account", "\u0661" * 12), "--account"),
    Case("family-arg-pattern", ("resolve", "Demo"), "FAMILY: expected a family name"),
    Case("scorecard-family-unknown", ("scorecard", "nope"), "unknown family 'nope'"),
    Case(
        "scorecard-threshold",
        ("scorecard",),
        "scorecard.fleet_on_release: expected a number in [0, 100], got 150",
        config=("[promoters]", "[scorecard]\nfleet_on_release = 150\n\n[promoters]"),
    ),
    Case("region-arg-newline", ("resolve", "demo", "--region", "us-east-1\n"), "--region"),
    Case("canary-family-option", ("canary", "start", "demo:1", "--family", "demo\n"), "--family"),
    Case("history-limit-zero", ("history", "--limit", "0"), "--limit"),
    Case(
        "exposure-version-bad",
        ("exposure", "openssl", "--version-below", "3.0 beta"),
        "--version-below: expected a Debian version",
    ),
    Case("exposure-cve-malformed", ("exposure", "openssl", "--cve", "CVE-24-1"), "--cve"),
    Case(
        "exposure-both-filters",
        ("exposure", "openssl", "--version-below", "1.0", "--cve", "CVE-2024-6119"),
        "one or the other",
    ),
    Case("exposure-package-pattern", ("exposure", "../etc"), "PACKAGE: expected a package name"),
    Case(
        "lease-release-unforced",
        ("leases", "--release", "group:us-east-1:web"),
        "needs --force and a --reason",
    ),
    Case(
        "lease-release-no-reason",
        ("leases", "--release", "group:us-east-1:web", "--force", "--reason", " "),
        "needs --force and a --reason",
    ),
    Case(
        "lease-release-unknown",
        ("leases", "--release", "group:us-east-1:web", "--force", "--reason", "gone"),
        "no lease named",
    ),
    Case(
        "judge-threshold-nan",
        (
            "canary",
            "judge",
            "--baseline",
            "{ws}/a.json",
            "--canary",
            "{ws}/a.json",
            "--pass-threshold",
            "nan",
        ),
        "--pass-threshold",
        files={"a.json": JSON_OK.encode()},
    ),
    Case("click-unknown-command", ("bogus",), "No such command"),
    Case("click-unknown-option", ("status", "--bogus"), "No such option"),
    Case("click-missing-argument", ("friends", "add"), "Missing argument"),
    Case("click-bad-choice", ("rollback", "demo", "--stage", "prod"), "--stage"),
    # --- base references
    # ----------------------------------------------------------------------------
    Case("ref-superscript", ("test", "demo:²"), "expected a version number"),
    Case("ref-huge-version", ("test", "demo:99999999999999999999"), "expected a version number"),
    Case("ref-trailing-newline", ("test", "demo:1\n"), "expected a version number"),
    Case("ref-leading-space", ("test", " demo:1"), "expected a family name"),
    Case("ref-zero", ("test", "demo:0"), "expected a version number"),
    Case("ref-unknown-family", ("test", "nope:1"), "unknown family"),
    Case("ref-no-family", ("test", "7"), "cannot tell which base"),
    Case("retire-family-unknown", ("retire", "nope"), "unknown family"),
    Case("retire-family-pattern", ("retire", "Demo"), "FAMILY: expected a family name"),
    Case("retire-accounts-unknown", ("retire", "--accounts", "nope"), "--accounts"),
    # --- canary judge files
    # -------------------------------------------------------------------------
    Case(
        "judge-no-metrics",
        ("canary", "judge", "--baseline", "{ws}/e.json", "--canary", "{ws}/a.json"),
        "no metrics",
        files={"e.json": b'{"metrics": {}}', "a.json": JSON_OK.encode()},
    ),
    Case(
        "judge-deep-json",
        ("canary", "judge", "--baseline", "{ws}/d.json", "--canary", "{ws}/a.json"),
        "nested too deeply",
        files={"d.json": b"[" * 100_000 + b"]" * 100_000, "a.json": JSON_OK.encode()},
    ),
    Case(
        "judge-huge-integer",
        ("canary", "judge", "--baseline", "{ws}/h.json", "--canary", "{ws}/a.json"),
        "out of range",
        files={"h.json": b"[" + b"9" * 5000 + b"]", "a.json": JSON_OK.encode()},
    ),
    Case(
        "judge-infinite-number",
        ("canary", "judge", "--baseline", "{ws}/i.json", "--canary", "{ws}/a.json"),
        "out of range",
        files={"i.json": b"[1e999, 1.0]", "a.json": JSON_OK.encode()},
    ),
    Case(
        "judge-infinity-literal",
        ("canary", "judge", "--baseline", "{ws}/i.json", "--canary", "{ws}/a.json"),
        "Infinity",
        files={"i.json": b"[Infinity, 1.0]", "a.json": JSON_OK.encode()},
    ),
    Case(
        "judge-not-utf8",
        ("canary", "judge", "--baseline", "{ws}/u.json", "--canary", "{ws}/a.json"),
        "cannot read",
        files={"u.json": b"[1.0, \xff]", "a.json": JSON_OK.encode()},
    ),
    Case(
        "judge-missing-file",
        ("canary", "judge", "--baseline", "{ws}/none.json", "--canary", "{ws}/a.json"),
        "no such file",
        files={"a.json": JSON_OK.encode()},
    ),
    # --- perf samples
    # -------------------------------------------------------------------------------
    Case(
        "samples-deep-json",
        ("perf", "compare", "{ws}/d.jsonl", "{ws}/ok.csv"),
        "nested too deeply",
        files={
            "d.jsonl": b'{"metric": "m", "value": 1, "metadata": '
            + b"[" * 100_000
            + b"]" * 100_000
            + b"}\n",
            "ok.csv": CSV_OK.encode(),
        },
    ),
    Case(
        "samples-huge-number",
        ("perf", "compare", "{ws}/h.jsonl", "{ws}/ok.csv"),
        "h.jsonl:1",
        files={
            "h.jsonl": b'{"metric": "m", "value": '
            + b"9" * 5000
            + b', "unit": "s", "arm": "baseline"}\n',
            "ok.csv": CSV_OK.encode(),
        },
    ),
    Case(
        "samples-infinite-value",
        ("perf", "compare", "{ws}/i.csv", "{ws}/ok.csv"),
        "is not a number",
        files={
            "i.csv": b"metric,value,unit,instance_type,arm\ncpu_time,inf,s,m5.large,baseline\n",
            "ok.csv": CSV_OK.encode(),
        },
    ),
    Case(
        "plots-into-a-file",
        ("perf", "compare", "{ws}/ok.csv", "{ws}/ok.csv", "--plots", "{ws}/ok.csv"),
        "--plots",
        files={"ok.csv": CSV_OK.encode()},
    ),
    Case(
        "changelog-gz-truncated",
        (
            "changelog",
            "diff",
            "{ws}/recipes/demo.manifest",
            "{ws}/new.manifest",
            "--changelog-dir",
            "{ws}/cl",
        ),
        "changelog file (",
        files={
            "cl/openssl.changelog.Debian.gz": OPENSSL_GZ[: len(OPENSSL_GZ) // 2],
            "new.manifest": NEW_MANIFEST,
        },
    ),
    Case(
        "changelog-gz-corrupt",
        (
            "changelog",
            "diff",
            "{ws}/recipes/demo.manifest",
            "{ws}/new.manifest",
            "--changelog-dir",
            "{ws}/cl",
        ),
        "changelog file (",
        files={
            "cl/openssl.changelog.Debian.gz": b"\x1f\x8b\x08\x00" + b"\x00" * 40,
            "new.manifest": NEW_MANIFEST,
        },
    ),
    # --- manifests of the wrong or an ambiguous package format (issue 22) ------------------------
    cfg(
        "package-format-unknown",
        'build_timeout = "20m"',
        'build_timeout = "20m"\npackage_format = "apk"',
        "families.demo.package_format",
    ),
    Case(
        "manifest-rpm-list-ambiguous",
        ("changelog", "diff", "{ws}/al.tsv", "{ws}/al.tsv"),
        "ambiguous manifest",
        files={"al.tsv": b"bash\t5.2.15-1.amzn2023.0.2\nglibc\t2.34-52.amzn2023.0.3\n"},
    ),
    Case(
        "manifest-rpm-qa-for-deb",
        ("changelog", "diff", "{ws}/q.txt", "{ws}/q.txt", "--package-format", "deb"),
        "lists RPM packages, but the package format is deb",
        files={"q.txt": b"bash-5.2.15-1.amzn2023.0.2.x86_64\ngpg-pubkey-d832c631-6515c85e\n"},
    ),
    Case(
        "manifest-file-missing",
        ("changelog", "diff", "{ws}/recipes/demo.manifst", "{ws}/recipes/demo.manifest"),
        "demo.manifst' not found (no such file)",
    ),
    Case(
        "output-into-a-file",
        (
            "changelog",
            "diff",
            "{ws}/recipes/demo.manifest",
            "{ws}/recipes/demo.manifest",
            "--output",
            "{ws}/imagefleet.toml/x.md",
        ),
        "--output",
    ),
]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Workspace.create(tmp_path_factory.mktemp("template")).root


@pytest.fixture()
def workspace(template: Path, tmp_path: Path) -> Workspace:
    import shutil

    root = tmp_path / "ws"
    shutil.copytree(template, root)
    return Workspace(root)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_cleanly(workspace: Workspace, case: Case) -> None:
    if case.config:
        old, new = case.config
        text = workspace.config.read_text()
        assert old in text, old
        workspace.config.write_text(text.replace(old, new, 1))
    for name, data in case.files.items():
        (workspace.root / name).parent.mkdir(parents=True, exist_ok=True)
        (workspace.root / name).write_bytes(data)
    before = workspace.snapshot()
    res = workspace.run(*(a.replace("{ws}", str(workspace.root)) for a in case.argv))
    assert_clean_refusal(res)
    assert case.needle in res.stderr.splitlines()[0], res.stderr
    assert workspace.snapshot() == before


def test_config_errors_name_file_and_line(workspace: Workspace) -> None:
    text = workspace.config.read_text().replace(
        "[promoters]", "[canary]\npass_threshold = nan\n[promoters]"
    )
    workspace.config.write_text(text)
    line = text.splitlines().index("pass_threshold = nan") + 1
    res = workspace.run("iam-policy")
    assert (
        f"{workspace.config}:{line}: canary.pass_threshold: expected a number in [0, 100], got nan"
        in res.stderr
    )


@pytest.mark.parametrize(
    ("old", "perf", "needle"),
    [
        ("duration = 0.05", "duration = nan", "perf.duration"),
        (
            'timeouts = { launch = "10m"',
            'timeouts = { launch = "99999999999999d"',
            "perf.timeouts.launch",
        ),
        ("repetitions = 3", "thresholds = { default = inf }", "perf.thresholds.default"),
        ("instances_per_arm = 9", "instances_per_arm = 9e99", "perf.instances_per_arm"),
    ],
)
def test_perf_config_bounds(workspace: Workspace, old: str, perf: str, needle: str) -> None:
    text = workspace.config.read_text().replace(old, perf)
    workspace.config.write_text(text)
    with pytest.raises(config.ConfigError) as err:
        perf_config.load(config.load(workspace.config))
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.startswith(perf))
    assert f"{workspace.config}:{line}: {needle}: expected" in str(err.value)


def test_inject_clear_needs_no_factor(workspace: Workspace) -> None:
    res = workspace.run("local", "inject", "--ami", "ami-0abc1234", "--clear")
    assert res.code == 0 and "cleared 0 injection(s)" in res.stdout, res


def test_docs_list_every_case() -> None:
    listed = set(re.findall(r"`([a-z0-9-]+)`", DOCS.read_text()))
    missing = [c.id for c in CASES if c.id not in listed]
    assert not missing, f"docs/bad-input.md lacks {missing}"
    assert len(CASES) >= 60
