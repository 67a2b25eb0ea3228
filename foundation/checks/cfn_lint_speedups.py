"""Four shortcuts through cfn-lint's hottest paths that change no finding, applied only to the
cfn-lint versions whose code they were written against (`READ`): any other version lints as it
ships. The first three took 28% off the time cfn-lint takes on its own test templates; all four
take half off a 1,000-DAG worker template's (1.45 s of CPU against 2.9 s, measured);
tests/test_cfn_lint_speedups.py holds every finding, on cfn-lint's test templates and the
toolkit's, to what cfn-lint finds without them.

1. `evolve` (a schema walk's every step makes a new Context, FunctionFilter and validator
   with one field changed) lists the dataclass's fields with `dataclasses.fields` on each call,
   70,000 times a template; here once per class. A Context (frozen, so its __init__ sets each
   of its 17 fields through object.__setattr__) is copied field by field instead, and so is
   the Path each step's `descend` makes.
2. `create` makes a new validator class (a dataclass: code generated and exec'd) for each
   `extend`, 700 times a template, for a handful of distinct keyword tables; here once per
   table, function filter and resolvers.
3. Rule E1101's `cfnLint` keyword looks through every child rule's keywords for each keyword
   it validates; here through an index of them, in child-rule order, so findings keep theirs.
4. A `$ref`'s fragment is found by searching the whole schema for it, 300 times a template
   for a few dozen distinct schemas and fragments; here once per pair.
"""

from __future__ import annotations

import dataclasses
import types
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

READ = ("1.58.0",)
_CLASSES_KEPT = 1024  # distinct validator classes: a few dozen per rules loaded
_FRAGMENTS_KEPT = 4096  # distinct schemas and fragments: a few dozen per template
# the subschema each (document, fragment) resolved to, with the document itself: held, so that
# no other document can take its identity while the entry is kept
_FRAGMENTS: dict[tuple[int, str], tuple[Any, Any]] = {}


def applies() -> bool:
    from cfnlint.version import __version__

    return __version__ in READ


def apply(rules: Any) -> None:
    """Into cfn-lint's modules (once per process) and onto `rules`, cfn-lint's rules as loaded
    (`Runner(config).rules`)."""
    if not applies():
        return
    _into_modules()
    _FRAGMENTS.clear()  # this Runner may have patched the schemas (override_spec)
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


def _copy_evolve(cls: type) -> Callable[..., Any]:
    """`evolve` of a frozen dataclass whose __init__ sets every field and nothing else, twice
    as fast as calling that __init__ (generated code that sets each field through
    object.__setattr__): a new instance whose fields come from `changes` or this instance.
    What a cached_property keeps on the instance is not a field, and is not copied."""
    init = frozenset(_init_fields(cls))
    names = tuple(f.name for f in dataclasses.fields(cls))

    def evolve(self: Any, **changes: Any) -> Any:
        if not init.issuperset(changes):
            unknown = ", ".join(sorted(set(changes) - init))
            raise TypeError(f"{type(self).__name__}.evolve() got unexpected fields: {unknown}")
        own = self.__dict__
        new = object.__new__(type(self))
        new.__dict__.update({n: changes[n] if n in changes else own[n] for n in names})
        return new

    return evolve


def _copyable(cls: type) -> bool:
    """Whether the dataclass's __init__ sets every field and nothing else, so that a copy made
    field by field is what it would make."""
    return all(f.init for f in dataclasses.fields(cls)) and not hasattr(cls, "__post_init__")


def _context_evolve(cls: type) -> Callable[..., Any]:
    """Context.evolve, which also merges `ref_values` into the context's own."""
    evolve = _copy_evolve(cls) if _copyable(cls) else _evolve(_init_fields(cls))

    def context_evolve(self: Any, **changes: Any) -> Any:
        if "ref_values" in changes:
            changes["ref_values"] = {**self.ref_values, **changes["ref_values"]}
        return evolve(self, **changes)

    return context_evolve


def _path_descend(cls: type, functions: Any) -> Callable[..., Any]:
    """Path.descend (each step of a schema walk), with Path's fields listed once and the new
    Path copied field by field as `_copy_evolve` does: each field that is given a value is this
    Path's with the value appended, the others are this Path's."""
    names = tuple(f.name for f in dataclasses.fields(cls))
    known = frozenset(names)

    def descend(self: Any, **kwargs: Any) -> Any:
        if kwargs.get("cfn_path") in functions:
            raise ValueError(f"{kwargs['cfn_path']!r} cannot be in 'cfn_path'")
        if isinstance(kwargs.get("cfn_path"), int):
            raise ValueError(f"{kwargs['cfn_path']!r} cannot be an integer")
        if not known.issuperset(kwargs):
            unknown = ", ".join(sorted(set(kwargs) - known))
            raise TypeError(f"Path.descend() got unexpected fields: {unknown}")
        own = self.__dict__
        new = object.__new__(type(self))
        new.__dict__.update(
            {n: own[n] if kwargs.get(n) is None else own[n] + deque([kwargs[n]]) for n in names}
        )
        return new

    return descend


def _remembered_fragments(resolve_fragment: Callable[..., Any]) -> Callable[..., Any]:
    """RefResolver.resolve_fragment, which searches its whole document (a resource type's
    schema) breadth-first for a matching id on each call, 300 times a template for a few dozen
    distinct documents and fragments; here once per pair, in _FRAGMENTS. A pure function of the
    two while the document is unchanged: cfn-lint changes its schemas in place only when a
    Runner applies a settings file's `override_spec`, before any lint with its rules, and
    `apply`, run on every Runner's rules, empties the memo."""

    def remembered(self: Any, document: Any, fragment: str) -> Any:
        key = (id(document), fragment)
        kept = _FRAGMENTS.get(key)
        if kept is None:
            if len(_FRAGMENTS) >= _FRAGMENTS_KEPT:
                _FRAGMENTS.clear()
            kept = _FRAGMENTS[key] = (document, resolve_fragment(self, document, fragment))
        return kept[1]

    return remembered


def _into_modules() -> None:
    from cfnlint.context import context
    from cfnlint.jsonschema import _filter, validators
    from cfnlint.schema.resolver import _resolver

    if getattr(validators.create, "_foundation", False):
        return
    context.Context.evolve = _context_evolve(context.Context)
    resolver = _resolver.RefResolver
    resolver.resolve_fragment = _remembered_fragments(resolver.resolve_fragment)
    if _copyable(context.Path):
        context.Path.descend = _path_descend(context.Path, context.FUNCTIONS)
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
