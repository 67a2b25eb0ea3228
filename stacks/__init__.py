"""CDK stacks and constructs of the cluster.

jsii (under aws-cdk-lib) prints a banner on every start on Node versions past its support window;
the toolkit runs on the machine's Node and says so once, in the README, instead.

jsii's Python bindings check every argument's type with typeguard before each call into Node.js,
unless Python runs with -O; the stacks skip those checks as -O would (a quarter of the Python
time of building 1,000 DAGs' identities, measured). jsii's kernel still checks each value it
receives against the construct library's types, and the stacks are tested code.
"""

import os

import jsii._type_checking

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20")
if hasattr(jsii._type_checking, "_resolved_check"):  # jsii's memo of its check function
    jsii._type_checking._resolved_check = lambda **_: None
