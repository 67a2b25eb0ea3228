"""CDK stacks and constructs of the cluster.

jsii (under aws-cdk-lib) prints a banner on every start on Node versions past its support window;
the toolkit runs on the machine's Node and says so once, in the README, instead.
"""

import os

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")
