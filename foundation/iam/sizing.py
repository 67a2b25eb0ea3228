"""Fit a DAG's grants into IAM managed policies, measured at their worst case."""

from __future__ import annotations

import json

from foundation.iam.policy import Statement

MANAGED_POLICY_MAX_CHARS = 6144


class DoesNotFit(Exception):
    pass


def document_size(statements: list[Statement]) -> int:
    """Characters IAM counts for a policy document holding `statements` (no whitespace)."""
    document = {"Version": "2012-10-17", "Statement": [s.document() for s in statements]}
    return len(json.dumps(document, separators=(",", ":")))


_EMPTY = document_size([])


def pack(units: list[list[Statement]], max_policies: int) -> list[list[int]]:
    """First-fit in order: each unit (one grant's statements) goes to the first policy with room.

    Units are measured unmerged; merging statements inside a policy afterwards only shrinks it.
    """
    bins: list[list[int]] = []
    used: list[int] = []
    for i, unit in enumerate(units):
        size = document_size(unit) - _EMPTY + 1  # +1: the comma joining it to its neighbour
        if _EMPTY + size > MANAGED_POLICY_MAX_CHARS:
            raise DoesNotFit(
                f"grant from {unit[0].sources[0]} alone is {size:,} characters at worst case; "
                f"a managed policy holds {MANAGED_POLICY_MAX_CHARS:,}"
            )
        for b, filled in enumerate(used):
            if filled + size <= MANAGED_POLICY_MAX_CHARS:
                bins[b].append(i)
                used[b] += size
                break
        else:
            bins.append([i])
            used.append(_EMPTY + size)
    if len(bins) > max_policies:
        raise DoesNotFit(
            f"needs {len(bins)} managed policies of {MANAGED_POLICY_MAX_CHARS:,} characters at "
            f"worst case; a role takes {max_policies} (iam.max_managed_policies_per_role): "
            "grant less, or ask for a higher IAM quota and raise that setting"
        )
    return bins
