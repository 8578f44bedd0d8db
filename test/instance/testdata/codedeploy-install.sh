#!/usr/bin/env bash
# Stand-in for AWS's CodeDeploy agent installer (https://aws-codedeploy-REGION.s3.REGION.amazonaws.com/latest/install),
# which this machine cannot reach: served to infra/instance/bootstrap.sh by test/instance in its
# place, and run the same way (`./install auto`, as root). It installs the REAL agent (dev/versions.env's, the
# peers' tarball, unmodified) with the peers' own install script, under /opt/codedeploy-agent, the
# package's directory; its codedeploy-local runs the deployments. BASE_URL and AGENT_VERSION are filled in by
# the test.
set -euo pipefail
BASE_URL=@BASE_URL@
AGENT_VERSION=@AGENT_VERSION@
dir=$(mktemp -d)
for f in install-codedeploy-local.sh "aws-codedeploy-agent-$AGENT_VERSION.tar.gz" docopt.rb-0.5.0.tar.gz; do
  curl --fail --silent --show-error --output "$dir/$f" "$BASE_URL/$f"
done
bash "$dir/install-codedeploy-local.sh" /opt/codedeploy-agent
rm -rf "$dir"
