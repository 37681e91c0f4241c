"""The ``py`` format: a standalone, readable Python file that depends only on torch.

Nothing is written twice by hand: the file is generated from the built module tree and from the
op modules' own source.

- Every class in the tree that is not torch's is copied with :func:`inspect.getsource`, its
  ``forward`` and other methods unchanged; only its ``__init__`` is replaced by a generated one
  that takes the built submodules and attribute values as arguments. (The originals take an op's
  argument mapping and call registry helpers, which the standalone file must not need.)
- Module-level names those methods use are resolved in the defining module: torch and standard
  library names become imports, functions and classes defined elsewhere are copied the same way
  (recursively), literal constants are written as literals. Anything else is refused with a
  message naming the class and the name.
- A generated ``build()`` instantiates the whole tree with literal arguments (torch layers as
  their constructor calls, e.g. ``nn.Conv2d(16, 96, 1, bias=False)``), commented with each
  block's compact description; ``load()`` reads the weights saved beside the file.

So an op added later is covered as long as its modules keep to the contract of the op modules:
torch-only methods, state in submodules, parameters, persistent buffers and literal attributes.
"""

from __future__ import annotations

import ast
import builtins
import functools
import inspect
import json
import os
import symtable
import sys
import textwrap
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

# Torch bases a copied class may derive from: their __init__ takes no argument.
_TORCH_BASES = (nn.Module, nn.Sequential, nn.ModuleList)
# Torch constructor arguments that carry placement, not structure.
_PLACEMENT_ARGS = ("device", "dtype")
_SIZE_ARGS = ("kernel_size", "stride", "padding", "dilation", "output_padding")
# Names the generated code itself uses (the file imports them in any case).
_PRELUDE: dict[str, Any] = {"torch": torch, "nn": nn, "os": os, "sys": sys, "Path": Path}
_INDENT = "    "


class PySourceError(ValueError):
    """A module tree the ``py`` format cannot write (the message names the class and why)."""


def _is_external(obj: Any) -> bool:
    """Whether ``obj`` (a module, class or function) comes from torch or the standard library,
    and is therefore imported by the generated file rather than copied into it."""
    name = obj.__name__ if isinstance(obj, types.ModuleType) else getattr(obj, "__module__", None)
    if not name:
        return False
    root = name.split(".")[0]
    return root == "torch" or root in sys.stdlib_module_names


_NOT_LITERAL = object()


def _literal(value: Any, where: str) -> str:
    """``repr(value)`` if it reads back as an equal value of the same type."""
    text = repr(value)
    try:
        back = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        back = _NOT_LITERAL
    if type(back) is not type(value) or back != value:
        raise PySourceError(f"{where} holds a {type(value).__name__} ({text[:60]}), which the py export "
                            "cannot write as a literal")
    return text


def _global_names(source: str) -> list[str]:
    """Names that ``source`` (one top-level ``def`` or ``class``) reads from module scope."""
    names: list[str] = []

    def walk(table: symtable.SymbolTable) -> None:
        for sym in table.get_symbols():
            top_level_def = table.get_type() == "module" and sym.is_assigned()
            if sym.is_referenced() and sym.is_global() and not top_level_def and sym.get_name() not in names:
                names.append(sym.get_name())
        for child in table.get_children():
            walk(child)

    walk(symtable.symtable(source, "<export>", "exec"))
    return names


def _type_hint(values: list[Any]) -> str:
    hints: list[str] = []
    for v in values:
        if isinstance(v, nn.Parameter):
            hint = "nn.Parameter"
        elif isinstance(v, torch.Tensor):
            hint = "torch.Tensor"
        elif isinstance(v, nn.Module):
            hint = "nn.Module"
        else:
            hint = "None" if v is None else type(v).__name__
        if hint not in hints:
            hints.append(hint)
    return " | ".join(sorted(hints, key=lambda h: (h == "None", h)))


@dataclass
class _ClassInfo:
    """A non-torch class with instances in the tree: its constructor fields, in order, with the
    values every instance holds (for the type hints)."""

    fields: list[str]
    values: dict[str, list[Any]] = field(default_factory=dict)
    buffers: set[str] = field(default_factory=set)


def _torch_base(cls: type) -> type:
    for base in cls.__mro__:
        if _is_external(base):
            if base not in _TORCH_BASES:
                raise PySourceError(f"class {cls.__qualname__}: the py export copies classes deriving from "
                                    f"{', '.join('nn.' + b.__name__ for b in _TORCH_BASES)} only, "
                                    f"not from {base.__module__}.{base.__qualname__}")
            return base
    raise AssertionError("every nn.Module derives from nn.Module")  # pragma: no cover


@functools.cache
def _base_attrs(base: type) -> frozenset[str]:
    """What a torch base class's ``__init__`` sets up by itself (``training``, ``_modules``...)."""
    return frozenset(vars(base()))


def _instance_fields(m: nn.Module, omit: frozenset[str]) -> list[tuple[str, Any]]:
    """The state of a non-torch module: submodules, parameters, persistent buffers and plain
    attributes (minus what its torch base sets up by itself)."""
    cls = type(m)
    base_attrs = _base_attrs(_torch_base(cls))
    where = f"{cls.__qualname__}"
    out: list[tuple[str, Any]] = list(m._modules.items()) + list(m._parameters.items())
    for name, buf in m._buffers.items():
        if name in m._non_persistent_buffers_set:
            raise PySourceError(f"{where}.{name}: non-persistent buffers are not in the state dict, "
                                "so the py export cannot restore them")
        out.append((name, buf))
    out += [(k, v) for k, v in vars(m).items() if k not in base_attrs and k not in omit]
    for name, _ in out:
        if not name.isidentifier() or name == "self":
            raise PySourceError(f"{where}: attribute {name!r} cannot be a constructor argument")
    return out


class _Writer:
    """Collects the imports and definitions of the generated file, dependencies first."""

    def __init__(self, classes: dict[type, _ClassInfo]):
        self.classes = classes
        self.stripped = {c for cls in classes for c in cls.__mro__ if not _is_external(c)}
        self.names: dict[str, Any] = dict(_PRELUDE)
        self.plain_imports = {"import os", "import sys", "import torch"}
        self.from_imports: dict[str, set[str]] = {"pathlib": {"Path"}, "torch": {"nn"}}
        self.defs: list[str] = []
        self._done: set[int] = set()

    # ---------------------------------------------------------------- names and imports
    def _claim(self, name: str, obj: Any, where: str) -> bool:
        """Reserve ``name`` for ``obj``; False when it already is. Two objects under one name fail."""
        if name in self.names:
            if self.names[name] is not obj:
                raise PySourceError(f"{where}: two different objects are called {name!r}; rename one")
            return False
        self.names[name] = obj
        return True

    def resolve(self, name: str, module: types.ModuleType, where: str) -> None:
        """Make the module-level ``name`` of ``module`` available in the generated file."""
        if name in module.__dict__:
            obj = module.__dict__[name]
        elif name in _PRELUDE:
            obj = _PRELUDE[name]
        elif hasattr(builtins, name):
            return
        else:
            raise PySourceError(f"{where}: name {name!r} is not defined in {module.__name__}")
        if isinstance(obj, types.ModuleType):
            if not _is_external(obj):
                raise PySourceError(f"{where}: uses module {obj.__name__!r}; import its names directly "
                                    "so the py export can copy them")
            if self._claim(name, obj, where):
                parent, _, leaf = obj.__name__.rpartition(".")
                if obj.__name__ == name:
                    self.plain_imports.add(f"import {name}")
                elif leaf == name:
                    self.from_imports.setdefault(parent, set()).add(name)
                else:
                    self.plain_imports.add(f"import {obj.__name__} as {name}")
        elif inspect.isclass(obj) or inspect.isroutine(inspect.unwrap(obj)):
            if _is_external(obj):
                if getattr(sys.modules.get(obj.__module__), name, None) is not obj:
                    raise PySourceError(f"{where}: {name!r} cannot be imported from {obj.__module__}")
                if self._claim(name, obj, where):
                    self.from_imports.setdefault(obj.__module__, set()).add(name)
            else:
                self.define(obj, name, where)
        else:
            if self._claim(name, obj, where):
                self.defs.append(f"{name} = {_literal(obj, f'{where}: global {name!r}')}")

    # ---------------------------------------------------------------- definitions
    def define(self, obj: Any, name: str, where: str) -> None:
        """Copy the function or class ``obj`` (and what it needs) into the file, once."""
        if id(obj) in self._done:
            self._claim(name, obj, where)
            return
        self._done.add(id(obj))
        target = inspect.unwrap(obj)
        if target.__name__ != name or "<locals>" in target.__qualname__:
            raise PySourceError(f"{where}: {name!r} is not a module-level definition of that name")
        self._claim(name, obj, where)
        if inspect.isclass(obj) and obj in self.stripped:
            source = self._class_source(obj)
        else:
            try:
                source = textwrap.dedent(inspect.getsource(obj))
            except (OSError, TypeError) as exc:
                raise PySourceError(f"{where}: no source for {name!r} ({exc})") from None
        module = sys.modules[target.__module__]
        for dep in _global_names(source):
            if dep != name:
                self.resolve(dep, module, f"{name} (in {module.__name__})")
        self.defs.append(source.rstrip())

    def _class_source(self, cls: type) -> str:
        """The class body with its own ``__init__`` replaced by the generated one (or dropped,
        for a base class without instances)."""
        try:
            lines = textwrap.dedent(inspect.getsource(cls)).splitlines()
        except (OSError, TypeError) as exc:
            raise PySourceError(f"class {cls.__qualname__}: no source ({exc})") from None
        node = ast.parse("\n".join(lines)).body[0]
        assert isinstance(node, ast.ClassDef)
        init = self._init_source(cls)
        own = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
        if own is not None:
            start = min([own.lineno] + [d.lineno for d in own.decorator_list]) - 1
            lines[start:own.end_lineno] = init
        else:
            funcs = [n for n in node.body if isinstance(n, ast.FunctionDef)]
            at = funcs[0].lineno - 1 if funcs else len(lines)
            lines[at:at] = [*init, ""] if funcs else ["", *init]
        text = "\n".join(lines)
        body = ast.parse(text).body[0]
        assert isinstance(body, ast.ClassDef)
        if not body.body:
            text += f"\n{_INDENT}pass"
        # Dropping __init__ can leave runs of blank lines inside the class: keep one.
        while "\n\n\n" in text:
            text = text.replace("\n\n\n", "\n\n")
        return text.rstrip()

    def _init_source(self, cls: type) -> list[str]:
        info = self.classes.get(cls)
        if info is None:
            return []
        params = [f"{f}: {_type_hint(info.values[f])}" for f in info.fields]
        signature = f"def __init__({', '.join(['self', *params])}) -> None:"
        if len(signature) > 100:  # one argument per line
            signature = "\n".join(["def __init__(", *(f"{_INDENT}{p}," for p in ["self", *params]), ") -> None:"])
        # super() would reach a copied base's generated __init__, which wants arguments.
        base = _torch_base(cls)
        calls_copied_init = any(c in self.classes for c in cls.__mro__[1:])
        sup = f"nn.{base.__name__}.__init__(self)" if calls_copied_init else "super().__init__()"
        body = [*signature.split("\n"), f"{_INDENT}{sup}"]
        for f in info.fields:
            if f in info.buffers:
                body.append(f'{_INDENT}self.register_buffer("{f}", {f})')
            else:
                body.append(f"{_INDENT}self.{f} = {f}")
        return [_INDENT + line for line in body]

    def imports(self) -> list[str]:
        """Import lines, isort style: standard library, then torch."""
        sections: dict[bool, list[str]] = {False: [], True: []}
        for line in sorted(self.plain_imports, key=lambda s: s.split()[1]):
            sections[line.split()[1].split(".")[0] == "torch"].append(line)
        for mod in sorted(self.from_imports):
            sections[mod.split(".")[0] == "torch"].append(
                f"from {mod} import {', '.join(sorted(self.from_imports[mod]))}")
        out: list[str] = []
        for torch_section in (False, True):
            if sections[torch_section]:
                out += sections[torch_section] + [""]
        return out[:-1]


def _torch_call(m: nn.Module, writer: _Writer) -> str:
    """The constructor call of a torch layer, its arguments read from the layer's attributes."""
    cls = type(m)
    name = cls.__name__
    if getattr(nn, name, None) is cls:
        qual = f"nn.{name}"
    else:
        writer.resolve(name, sys.modules[cls.__module__], f"layer {cls.__module__}.{name}")
        qual = name
    args: list[str] = []
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name == "self" or p.name in _PLACEMENT_ARGS or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if not hasattr(m, p.name):
            raise PySourceError(f"layer {qual}: constructor argument {p.name!r} is not an attribute, "
                                "so the py export cannot write the call")
        value = getattr(m, p.name)
        if isinstance(p.default, bool) and (value is None or isinstance(value, torch.Tensor)):
            value = value is not None  # bias=True/False, stored as a parameter or None
        if p.name in _SIZE_ARGS and isinstance(value, tuple) and len(set(value)) == 1:
            value = value[0]
        if p.default is not p.empty and value == p.default and type(value) is type(p.default):
            continue
        text = _literal(value, f"layer {qual}: argument {p.name!r}")
        args.append(text if p.default is p.empty else f"{p.name}={text}")
    return f"{qual}({', '.join(args)})"


def _walk(m: nn.Module, omit: Mapping[type, frozenset[str]], classes: dict[type, _ClassInfo],
          seen: set[int]) -> None:
    """Post-order pass: record every non-torch class and the fields of its instances."""
    if id(m) in seen:
        raise PySourceError(f"a {type(m).__name__} instance is used twice in the tree; the py export "
                            "writes a tree, so shared modules are not supported")
    seen.add(id(m))
    for child in m._modules.values():  # not children(), which hides a module used twice
        if child is not None:
            _walk(child, omit, classes, seen)
    cls = type(m)
    if _is_external(cls):
        return
    fields = _instance_fields(m, omit.get(cls, frozenset()))
    names = [n for n, _ in fields]
    info = classes.setdefault(cls, _ClassInfo(fields=names, values={n: [] for n in names}))
    if set(names) != set(info.fields):
        raise PySourceError(f"instances of {cls.__qualname__} have different attributes "
                            f"({', '.join(info.fields)} vs {', '.join(names)})")
    info.buffers.update(m._buffers)
    for n, v in fields:
        if not isinstance(v, (nn.Module, torch.Tensor)):
            _literal(v, f"{cls.__qualname__}.{n}")
        info.values[n].append(v)


class _Tree:
    """Writes the nested constructor expression of a module tree."""

    def __init__(self, writer: _Writer, omit: Mapping[type, frozenset[str]], comments: Mapping[int, str]):
        self.writer = writer
        self.omit = omit
        self.comments = comments

    def lines(self, m: nn.Module, prefix: str, depth: int) -> list[str]:
        """``m``'s expression as lines at ``depth``, the first one starting with ``prefix``
        (``name=`` or nothing) and the last one ending in a comma (argument style)."""
        pad = _INDENT * depth
        out = [f"{pad}# {self.comments[id(m)]}"] if id(m) in self.comments else []
        cls = type(m)
        if cls in (nn.Sequential, nn.ModuleList):
            keys = list(m._modules)
            if keys != [str(i) for i in range(len(keys))]:
                raise PySourceError(f"nn.{cls.__name__} with named children ({', '.join(keys)}) is not "
                                    "supported by the py export")
            opening, closing = ("nn.Sequential(", ")") if cls is nn.Sequential else ("nn.ModuleList([", "])")
            children = list(m._modules.values())
            if not children:
                return [*out, f"{pad}{prefix}{opening}{closing},"]
            out.append(f"{pad}{prefix}{opening}")
            for child in children:
                out += self.lines(child, "", depth + 1)
            return [*out, f"{pad}{closing},"]
        if _is_external(cls):
            return [*out, f"{pad}{prefix}{_torch_call(m, self.writer)},"]
        fields = _instance_fields(m, self.omit.get(cls, frozenset()))
        if not fields:
            return [*out, f"{pad}{prefix}{cls.__name__}(),"]
        out.append(f"{pad}{prefix}{cls.__name__}(")
        for name, value in fields:
            where = f"{cls.__qualname__}.{name}"
            if isinstance(value, torch.Tensor):
                shape = ", ".join(str(d) for d in value.shape)
                tensor = f"torch.empty(({shape}{',' if value.dim() == 1 else ''}))"
                expr = f"nn.Parameter({tensor})" if isinstance(value, nn.Parameter) else tensor
                out.append(f"{pad}{_INDENT}{name}={expr},")
            elif isinstance(value, nn.Module):
                out += self.lines(value, f"{name}=", depth + 1)
            else:
                out.append(f"{pad}{_INDENT}{name}={_literal(value, where)},")
        return [*out, f"{pad}),"]


def generate(
    model: nn.Module,
    *,
    docstring: str,
    weights_file: str,
    input_shape: tuple[int, ...],
    omit: Mapping[type, frozenset[str]] | None = None,
    comments: Mapping[int, str] | None = None,
) -> str:
    """Python source of a torch-only file defining ``model``'s classes, ``build()`` and ``load()``.

    Args:
        model: the module tree to write (its weights are not in the source).
        docstring: the file's docstring (what the network is).
        weights_file: name of the weights file beside the generated one, read by ``load()``.
        input_shape: ``(C, H, W)`` of the smoke run of ``python FILE.py``.
        omit: per class, attributes not to write (not needed by its methods).
        comments: ``id(submodule) -> text``, written as a comment above that submodule.
    """
    omit = omit or {}
    classes: dict[type, _ClassInfo] = {}
    _walk(model, omit, classes, set())
    writer = _Writer(classes)
    for cls in classes:
        writer.define(cls, cls.__name__, f"class {cls.__qualname__}")
    root = type(model).__name__ if not _is_external(type(model)) else "nn.Module"
    tree = _Tree(writer, omit, comments or {}).lines(model, "return ", 1)
    tree[-1] = tree[-1].rstrip(",")
    shape = ", ".join(str(d) for d in input_shape)
    tail = [
        f"WEIGHTS = Path(__file__).with_name({json.dumps(weights_file)})",
        f"INPUT_SHAPE = ({shape})",
        "",
        "",
        f"def build() -> {root}:",
        '    """The network with freshly initialised (PyTorch default) weights."""',
        *tree,
        "",
        "",
        f"def load(weights: str | os.PathLike[str] | None = WEIGHTS) -> {root}:",
        '    """The network with the weights in ``weights`` (default: the file saved beside this one;',
        '    a plain state dict or a litenas model file), in eval mode. ``None``: fresh weights."""',
        "    model = build()",
        "    if weights is not None:",
        '        state = torch.load(weights, map_location="cpu", weights_only=True)',
        '        model.load_state_dict(state.get("state_dict", state))',
        "    return model.eval()",
        "",
        "",
        'if __name__ == "__main__":',
        "    net = load(sys.argv[1] if len(sys.argv) > 1 else WEIGHTS)",
        "    with torch.no_grad():",
        "        out = net(torch.randn(1, *INPUT_SHAPE))",
        '    print(f"{type(net).__name__}: input {(1, *INPUT_SHAPE)} -> output {tuple(out.shape)}")',
    ]
    header = f'"""{docstring.strip()}\n"""\n\nfrom __future__ import annotations\n\n' + "\n".join(writer.imports())
    return "\n\n\n".join([header, *writer.defs, "\n".join(tail)]) + "\n"
