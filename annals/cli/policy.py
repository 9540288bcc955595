"""``annals policy-sample``: the default policy rules, as a commented ``policy.yaml``.

The rules come from the ``oslo.policy.policies`` entry point ``annals`` (the same output as
``oslopolicy-sample-generator --namespace annals``). Uncomment and change a rule in a file
named by ``[oslo_policy] policy_file`` to override it.
"""

from __future__ import annotations

import argparse

from oslo_config import cfg
from oslo_policy import generator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output-file", metavar="FILE", help="write the sample to FILE (default: standard output)"
    )


def run(args: argparse.Namespace) -> int:
    argv = ["--namespace", "annals"]
    if args.output_file:
        argv += ["--output-file", args.output_file]
    generator.generate_sample(args=argv, conf=cfg.ConfigOpts())
    return 0
