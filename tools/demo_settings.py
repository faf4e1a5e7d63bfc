"""What `make demo` sets up: its family, fleet and second account, the next base's recipe, the
family's parent and OS release, its canary and metrics, and the image tests it runs inside the
image. `tools/demo.py` tells the story with them; the demo's test checks the outcome against them.
"""

from __future__ import annotations

FAMILY = "demo"
FLEET_PER_TYPE = 25  # 4 cohort types × 25 = 100 instances
# The organisation's second account: the endpoint routes a request signed with the credentials of
# a role assumed in 222222222222 to that account (`local up` makes the role there, as a StackSet
# would). Its fleet is small (2 groups × 5) so the demo takes about as long as with one account;
# r5.large is among its types, so the injected cohort spans both accounts.
MEMBER = "stream"
MEMBER_ID = "222222222222"
MEMBER_TYPES = ("m5.large", "r5.large")
MEMBER_PER_TYPE = 5
ACCOUNTS_DEMO_CONFIG = f"""
[accounts.{MEMBER}]
id = "{MEMBER_ID}"
role = "arn:aws:iam::{MEMBER_ID}:role/imagefleet-member"
"""
REGRESSED_TYPES = "r5.*"
INJECTED_COHORT = "r5.large"
REGRESSION = ("latency_ms", 1.6)  # the canary's metric, 60 % worse; the benchmarks are untouched
# The agents the demo runs on its clock, by role, each with what it serves (the handlers and the
# in-flight checks come from the CLI's mounting: the core does not import the areas).
AGENTS = {"health": "rollout", "benchmarks": "perf run", "instances": "image test"}

# The next base's recipe: security upgrades, one added and one removed package.
NEXT_MANIFEST_CHANGES = {
    "curl": "8.5.0-2ubuntu10.4",
    "libcurl4t64:amd64": "8.5.0-2ubuntu10.4",
    "libssl3t64:amd64": "3.0.13-0ubuntu3.4",
    "openssl": "3.0.13-0ubuntu3.4",
    "openssh-server": "1:9.6p1-3ubuntu13.5",
    "linux-image-aws": "6.8.0.1015.16",
    "jq": "1.7.1-3build1",
}
NEXT_MANIFEST_REMOVED = {"e2fsprogs"}

# The family's parent: Canonical's SSM public parameter for Ubuntu 24.04, as on AWS. `local up`
# publishes it on the endpoint (the same stock image init's source_filter picks), and
# `local publish` moves it as Canonical does when it releases a new image.
PARENT_PARAMETER = (
    "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"
)
LIFE_DEMO_CONFIG = f"""
source_parameter = "{PARENT_PARAMETER}"
max_age = "30d"
"""
# Where does this run: a CVE the next base's changelog records as fixed (in openssl), and the
# package version the next base brings; both are what the bootstrap release still runs.
EXPOSURE_CVE = "CVE-2024-6119"
# The family's OS release's end of standard support (Canonical's for 24.04), for `fleet` and the
# scorecard's end-of-life cell.
OS_RELEASES_DEMO_CONFIG = """
[os_releases."ubuntu-24.04"]
end_of_life = "2029-05-31"
"""
EXPOSURE_PACKAGE = ("openssh-server", NEXT_MANIFEST_CHANGES["openssh-server"])

# The demo's canary: two waves per cohort (one instance, then the rest), windows long enough for
# nine points per instance, half a group replaced at a time, and "continue": a failing cohort is
# rolled back while the others go on. Virtual seconds: they cost no wall time.
CANARY_DEMO_CONFIG = """
[canary]
waves = [1, 1.0]
on_fail = "continue"
cohorts_in_flight = 4
min_healthy_pct = 50
warmup = "30s"
analysis = "90s"
period = "10s"
metric_delay = "10s"
batch_spacing = "5s"
jitter = "2s"
poll = "5s"
instance_timeout = "5m"
"""


# The demo family's image tests: EC2's status checks, and a check inside each test instance through
# SSM Run Command. The local SSM agent runs it on this host with the base's package manifest in
# $IMAGEFLEET_MANIFEST; on AWS the instance's agent runs it against the package database.
IMAGE_TESTS_DEMO_CONFIG = """
tests = [
  { name = "status", type = "ec2-status" },
  { name = "packages", type = "ssm", timeout = "5m", command = '''
if [ -n "${IMAGEFLEET_MANIFEST:-}" ]; then cat "$IMAGEFLEET_MANIFEST"
else dpkg-query -W -f='${Package}\\t${Version}\\n'; fi > packages.txt
for p in openssh-server ca-certificates linux-image-aws; do
  grep -q "^$p[[:space:]]" packages.txt || { echo "missing package: $p" >&2; exit 1; }
done
echo "$(wc -l < packages.txt) packages; openssh-server ca-certificates linux-image-aws present"
''' },
]
"""


# With the Prometheus source: the release gate's soak (`init`'s 5 minutes), the perf waits and
# the canary's windows put the demo's virtual clock ahead of the wall clock; served the soak plus
# half an hour back, its points land before now and inside the hour Prometheus ingests (its own
# series are stamped now), whatever the bake and perf took.
PROMQL_SHIFT = "35m"
PROMQL_SHIFT_S = 35 * 60
METRIC_DELAY_S = 10.0  # CANARY_DEMO_CONFIG's metric_delay
# The canary's three metrics as PromQL over what the local Prometheus scrapes; the same names,
# groups and thresholds as the CloudWatch defaults (canary/config.py).
PROMQL_METRICS = """
prometheus_url = "{url}"
# The local Prometheus (`local up --prometheus`) scrapes the health agent; the demo's clock is
# ahead of it after the soak and the perf waits, so the agent serves its points {shift} back.
[[canary.metrics]]
name = "latency_ms"
source = "prometheus"
query = 'latency_ms{{instance_id="{{instance_id}}"}} offset {shift}'
direction = "increase"
group = "latency"
allowed_increase = 1.1
[[canary.metrics]]
name = "error_rate"
source = "prometheus"
query = 'error_rate{{instance_id="{{instance_id}}"}} offset {shift}'
direction = "increase"
group = "errors"
allowed_increase = 1.1
[[canary.metrics]]
name = "cpu"
source = "prometheus"
query = 'cpu{{instance_id="{{instance_id}}"}} offset {shift}'
direction = "increase"
group = "saturation"
allowed_increase = 1.1
"""
