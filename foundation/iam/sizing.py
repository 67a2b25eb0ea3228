"""Fit a DAG's statements into IAM managed policies, measured at their worst case."""

from __future__ import annotations

from dataclasses import dataclass

from foundation.iam.policy import Statement

MANAGED_POLICY_MAX_CHARS = 6144
# {"Version":"2012-10-17","Statement":[ ... ]} around the statements, commas between them.
_DOCUMENT_OVERHEAD = len('{"Version":"2012-10-17","Statement":[]}')


@dataclass
class Packing:
    policies: list[list[int]]  # statement indexes per managed policy
    sizes: list[int]  # worst-case characters per managed policy


class DoesNotFit(Exception):
    pass


def pack(worst_case: list[Statement], max_policies: int) -> Packing:
    """First-fit in order: statement i goes to the first policy with room for it."""
    packing = Packing([], [])
    for i, statement in enumerate(worst_case):
        size = statement.size()
        if size + _DOCUMENT_OVERHEAD > MANAGED_POLICY_MAX_CHARS:
            raise DoesNotFit(
                f"statement {statement.sid} alone is {size:,} characters at worst case; a managed "
                f"policy holds {MANAGED_POLICY_MAX_CHARS:,}: split it into several statements"
            )
        for index, used in enumerate(packing.sizes):
            if used + 1 + size <= MANAGED_POLICY_MAX_CHARS:
                packing.policies[index].append(i)
                packing.sizes[index] = used + 1 + size
                break
        else:
            packing.policies.append([i])
            packing.sizes.append(_DOCUMENT_OVERHEAD + size)
    if len(packing.policies) > max_policies:
        raise DoesNotFit(
            f"needs {len(packing.policies)} managed policies of {MANAGED_POLICY_MAX_CHARS:,} "
            f"characters at worst case; a role takes {max_policies} "
            "(iam.max_managed_policies_per_role): grant less or use wider prefixes"
        )
    return packing
