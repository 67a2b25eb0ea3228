"""Three shortcuts through cfn-lint's hottest paths that change no finding, applied only to the
cfn-lint versions whose code they were written against (`READ`): any other version lints as it
ships. They take 28% off the time cfn-lint takes on its own test templates and 40% off a
1,000-DAG worker template's; tests/test_cfn_lint_speedups.py holds every finding, on cfn-lint's
test templates and the toolkit's, to what cfn-lint finds without them.

1. `evolve` (a schema walk's every step makes a new Context, FunctionFilter and validator
   with one field changed) lists the dataclass's fields with `dataclasses.fields` on each call,
   70,000 times a template; here once per class.
2. `create` makes a new validator class (a dataclass: code generated and exec'd) for each
   `extend`, 700 times a template, for a handful of distinct keyword tables; here once per
   table, function filter and resolvers.
3. Rule E1101's `cfnLint` keyword looks through every child rule's keywords for each keyword
   it validates; here through an index of them, in child-rule order, so findings keep theirs.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Iterator
from typing import Any

READ = ("1.58.0",)
_CLASSES_KEPT = 1024  # distinct validator classes: a few dozen per rules loaded


def applies() -> bool:
    from cfnlint.version import __version__

    return __version__ in READ


def apply(rules: Any) -> None:
    """Into cfn-lint's modules (once per process) and onto `rules`, cfn-lint's rules as loaded
    (`Runner(config).rules`)."""
    if not applies():
        return
    _into_modules()
    _index_keywords(rules["E1101"])


def _init_fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.init)


def _evolve(names: tuple[str, ...]) -> Callable[..., Any]:
    """The dataclass's `evolve`: a copy with `changes`, the other init fields as they are."""

    def evolve(self: Any, **changes: Any) -> Any:
        for name in names:
            if name not in changes:
                changes[name] = getattr(self, name)
        return self.__class__(**changes)

    return evolve


def _context_evolve(names: tuple[str, ...]) -> Callable[..., Any]:
    """Context.evolve, which also merges `ref_values` into the context's own."""
    evolve = _evolve(names)

    def context_evolve(self: Any, **changes: Any) -> Any:
        if "ref_values" in changes:
            changes["ref_values"] = {**self.ref_values, **changes["ref_values"]}
        return evolve(self, **changes)

    return context_evolve


def _into_modules() -> None:
    from cfnlint.context import context
    from cfnlint.jsonschema import _filter, validators

    if getattr(validators.create, "_foundation", False):
        return
    context.Context.evolve = _context_evolve(_init_fields(context.Context))
    filter_fields = _init_fields(_filter.FunctionFilter)
    _filter.FunctionFilter.evolve = _evolve(filter_fields)
    made = validators.create
    classes: dict[tuple[Any, ...], type] = {}

    def create(
        validators: Any = None, function_filter: Any = None, fn_resolvers: Any = None
    ) -> type:
        # made without a filter, a class has a FunctionFilter() of its own, a default one
        shown = function_filter or _filter.FunctionFilter()
        key = (
            tuple((validators or {}).items()),
            tuple(getattr(shown, name) for name in filter_fields),
            tuple((fn_resolvers or {}).items()),
        )
        try:
            hash(key)
        except TypeError:  # a custom rule's keyword validator that cannot be hashed
            return _with_evolve(made(validators, function_filter, fn_resolvers))
        if key not in classes:
            if len(classes) >= _CLASSES_KEPT:
                classes.clear()
            classes[key] = _with_evolve(made(validators, function_filter, fn_resolvers))
        return classes[key]

    create._foundation = True  # type: ignore[attr-defined]
    # `extend` of every class calls the module's `create`; the two made at import, patched here
    validators.create = create
    _with_evolve(validators.CfnTemplateValidator)
    _with_evolve(validators.StandardValidator)


def _with_evolve(cls: type) -> type:
    cls.evolve = _evolve(_init_fields(cls))  # type: ignore[attr-defined]
    return cls


def _index_keywords(rule: Any) -> None:
    from cfnlint.jsonschema._utils import Unset

    built: list[dict[str, list[Any]]] = []

    def indexed() -> dict[str, list[Any]]:
        """Built at the first call: cfn-lint wires the child rules as a run starts (each run
        the same rules), and a rule runs only after."""
        if not built:
            index: dict[str, list[Any]] = {}
            for child in rule.child_rules.values():
                if child is not None and child.id:
                    for keyword in child.keywords:
                        index.setdefault(keyword, []).append(child)
            built.append(index)
        return built[0]

    def cfn_lint(self: Any, validator: Any, keywords: Any, instance: Any, schema: Any) -> Iterator:
        validator = validator.evolve(
            function_filter=validator.function_filter.evolve(add_cfn_lint_keyword=False)
        )
        children = indexed()
        for keyword in keywords:
            for child in children.get(keyword, ()):
                for err in child.validate(validator, keyword, instance, schema):
                    if err.rule is None and isinstance(err.validator, Unset):
                        err.rule = child
                    yield err

    rule.cfnLint = types.MethodType(cfn_lint, rule)
