"""The user-facing messages of Storage Sync, found in ``src/`` by walking the AST (never by matching text).

What counts as user-facing (what a Keboola project owner can see in the job's events or in a sync action's answer):

- every construction of an exception whose text reaches the user: ``UserException`` (exit 1, the job's last line),
  the configuration validators' ``_Bad`` (a ValueError that ``configuration._validate`` renders into a
  ``UserException`` naming the key), ``StorageApiError`` and every class derived from it in ``src`` (their text
  is the ``{detail}`` of a ``describe_failure`` sentence or of a sync action's answer), the table runner's
  ``Stopped`` (the reason a table did not finish) and google-auth's ``RefreshError`` raised by the GCS adapter (the
  detail of a failed transfer);
- every log line at level warning or above (``logger.warning`` / ``.error`` / ``.exception`` / ``.critical``, also
  on the ``logging`` module): Keboola shows them as warnings and errors in the job's events. Info and debug lines
  are not included;
- a line that only passes another message on (``logger.error("%s", exc)``, ``UserException(redact(str(exc)))``,
  ``UserException(bad.render(path))``) has no text of its own and is not listed again.

How a message is rendered: string constants as they are; f-strings and ``%``-formats with each placeholder shown as
``{name}``, the name derived from the expression (``{dest}``, ``{exc}``, ``{table_id}``); ``str.format`` templates
of ``_Bad`` with their ``{path}``-style fields. A message built from pieces is resolved where the code says which:

- a local variable or class attribute holding the message (``message = ...`` in several branches,
  ``not_an_object: ClassVar[str] = ...``): one message per assignment; in a placeholder, a local variable that is
  only ever assigned text (``where = f"in/tables/{name}"``) is shown as that text, unless it may be empty (an
  optional piece such as ``more = "" if ...`` stays ``{more}``);
- ``redact(f"...")`` keeps the words (it only hides secrets);
- a parameter of the enclosing function (``_action_errors(what)``, ``storage_errors(action, table_id)``,
  ``_string_or_env(..., when_missing)``): one message per call site that passes text (a call site passing a
  variable leaves the parameter's own name, ``{table_id}``); calls are matched by name, a method's through
  ``self``/``cls`` or a receiver named after its class (``client.jobs.submit`` for ``Jobs.submit``);
- a function of ``src`` that returns the text (``_config_file_error``, ``type_error``): one message per return;
- a module-level dict of sentences indexed in a placeholder (``STOPPED_NEXT_RUN``, ``_TRANSPORT_TEXT``): one message
  per value;
- ``describe_failure(exc, action, table_id)`` (workflows/context.py), which every ``storage_errors`` block uses:
  rendered as it builds its sentence, ``"<Action> table {table} failed: {detail}."``.

Each message has a stable id: a slug of its first words and a hash of its exact text, so that a reworded message is
a new id (and must be documented again) while a moved one keeps its id.

``python scripts/error_messages.py`` prints the list (markdown); ``--check docs/troubleshooting.md`` exits 1 naming
every message whose id or text is missing from the guide and every id of the guide that is no longer in the code.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import itertools
import re
import string
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"

BASE_CARRIERS = {"UserException", "_Bad", "StorageApiError", "Stopped", "RefreshError"}
TEMPLATE_CARRIERS = {"_Bad"}  # str.format templates: ``{path}`` fields, ``{{`` for a brace
LOG_LEVELS = {"warning": "warning", "error": "error", "exception": "error", "critical": "error"}
LOGGER_NAMES = {"logger", "logging", "_logger", "log"}
FAILURE_SENTENCE = "describe_failure"  # workflows/context.py: "<Action> table X failed: <detail>."
MAX_VARIANTS = 64
MAX_DEPTH = 4
ID_MARK = re.compile(r"<!--\s*id:\s*([a-z0-9-]+)\s*-->")


class ExtractorError(RuntimeError):
    """The code no longer has a shape the extractor relies on (e.g. ``describe_failure`` changed)."""


@dataclass
class Message:
    id: str
    text: str
    kind: str  # "error" (an exception's text), "warning" or "log-error" (a log line)
    locations: list[str] = field(default_factory=list)  # "workflows/destination.py:Destination._rebuild:270"

    @property
    def module(self) -> str:
        return self.locations[0].split(":", 1)[0]


def message_id(text: str) -> str:
    words = re.findall(r"[a-z0-9]+", re.sub(r"\{[^{}]*\}", " ", text).lower())
    slug = "-".join(words[:5]) or "message"
    return f"{slug}-{hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:6]}"


def normalise(text: str) -> str:
    return " ".join(text.split())


# ---------------------------------------------------------------------------------------------------------------
# the code base


@dataclass
class Module:
    rel: str
    tree: ast.Module
    parents: dict[ast.AST, ast.AST]
    dicts: dict[str, list[str]]  # module-level dicts whose values are all strings
    class_attrs: dict[str, list[ast.expr]]  # class-level assignments by attribute name


@dataclass
class Function:
    module: Module
    node: ast.FunctionDef | ast.AsyncFunctionDef
    qualname: str

    @property
    def params(self) -> list[str]:
        args = self.node.args
        return [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]

    def default(self, name: str) -> ast.expr | None:
        args = self.node.args
        positional = [*args.posonlyargs, *args.args]
        defaults = dict(zip([a.arg for a in positional[len(positional) - len(args.defaults) :]], args.defaults))
        defaults.update({a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None})
        return defaults.get(name)


@dataclass(frozen=True)
class Scope:
    """Where an expression is rendered: its module, its function and what the function's parameters hold."""

    module: Module
    function: Function | None
    env: tuple[tuple[str, tuple[ast.expr, Scope]], ...] = ()
    depth: int = 0

    def bound(self, name: str) -> tuple[ast.expr, Scope] | None:
        return dict(self.env).get(name)


class Codebase:
    def __init__(self, sources: dict[str, str]):
        self.modules: list[Module] = []
        self.functions: dict[str, list[Function]] = {}
        for rel, text in sorted(sources.items()):
            tree = ast.parse(text, filename=rel)
            parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
            module = Module(rel, tree, parents, _module_dicts(tree), _class_attrs(tree))
            self.modules.append(module)
            self._index_functions(module, tree, "")
        self.carriers = self._carriers()
        self._calls: dict[str, list[tuple[ast.Call, Module]]] | None = None
        classes = [n for m in self.modules for n in ast.walk(m.tree) if isinstance(n, ast.ClassDef)]
        self._bases = {n.name: [_name(b) for b in n.bases] for n in classes}
        self._stems = {Path(m.rel).stem for m in self.modules}

    @classmethod
    def from_dir(cls, src: Path = SRC) -> Codebase:
        return cls({str(p.relative_to(src)): p.read_text(encoding="utf-8") for p in sorted(src.rglob("*.py"))})

    def _index_functions(self, module: Module, node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                qualname = f"{prefix}{child.name}"
                self.functions.setdefault(child.name, []).append(Function(module, child, qualname))
                self._index_functions(module, child, f"{qualname}.")
            elif isinstance(child, ast.ClassDef):
                self._index_functions(module, child, f"{prefix}{child.name}.")
            else:
                self._index_functions(module, child, prefix)

    def _carriers(self) -> set[str]:
        """The base carriers and every class of src derived from one of them."""
        carriers = set(BASE_CARRIERS)
        classes = [n for m in self.modules for n in ast.walk(m.tree) if isinstance(n, ast.ClassDef)]
        changed = True
        while changed:
            changed = False
            for cls in classes:
                if cls.name not in carriers and any(_name(b) in carriers for b in cls.bases):
                    carriers.add(cls.name)
                    changed = True
        return carriers

    def _receiver_is(self, receiver: ast.expr, owner: str, module: Module, call: ast.Call) -> bool:
        """Whether ``receiver.method(...)`` calls a method of class ``owner``: ``self``/``cls`` inside that class,
        or a receiver named after it (``client.jobs`` for ``Jobs``, ``self.config`` for ``Configuration``)."""
        if isinstance(receiver, ast.Name) and receiver.id in ("self", "cls"):
            _, klass = self.enclosing(module, call)
            return klass is not None and owner in self._lineage(klass.name)
        name = (_name(receiver) or "").lstrip("_").lower()
        return len(name) >= 4 and (owner.lower().lstrip("_").startswith(name) or name.endswith(owner.lower()))

    def _lineage(self, name: str) -> set[str]:
        """A class of src and the classes it derives from (by name)."""
        bases = self._bases
        seen, todo = set(), [name]
        while todo:
            current = todo.pop()
            if current and current not in seen:
                seen.add(current)
                todo += bases.get(current, [])
        return seen

    def enclosing(self, module: Module, node: ast.AST) -> tuple[Function | None, ast.ClassDef | None]:
        function = klass = None
        current = module.parents.get(node)
        while current is not None:
            if function is None and isinstance(current, (ast.FunctionDef, ast.AsyncFunctionDef)):
                function = next(f for f in self.functions[current.name] if f.node is current)
            if klass is None and isinstance(current, ast.ClassDef):
                klass = current
            current = module.parents.get(current)
        return function, klass

    def call_sites(self, function: Function) -> list[tuple[ast.Call, Module]]:
        if self._calls is None:
            self._calls = {}
            for module in self.modules:
                for node in ast.walk(module.tree):
                    if isinstance(node, ast.Call) and _name(node.func):
                        self._calls.setdefault(_name(node.func), []).append((node, module))
        stems = self._stems
        parent = function.module.parents.get(function.node)
        owner = parent.name if isinstance(parent, ast.ClassDef) else None
        sites = []
        for call, module in self._calls.get(function.node.name, []):
            func = call.func
            if owner is not None:
                if isinstance(func, ast.Attribute) and self._receiver_is(func.value, owner, module, call):
                    sites.append((call, module))
            elif owner is None and (
                isinstance(func, ast.Name)
                or (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in stems)
            ):
                sites.append((call, module))
        return sites


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _module_dicts(tree: ast.Module) -> dict[str, list[str]]:
    found = {}
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
        if isinstance(node, ast.AnnAssign):
            target = node.target
        value = getattr(node, "value", None)
        if isinstance(target, ast.Name) and isinstance(value, ast.Dict) and value.values:
            texts = [v.value for v in value.values if isinstance(v, ast.Constant) and isinstance(v.value, str)]
            if len(texts) == len(value.values):
                found[target.id] = texts
    return found


def _class_attrs(tree: ast.Module) -> dict[str, list[ast.expr]]:
    found: dict[str, list[ast.expr]] = {}
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        for node in cls.body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                found.setdefault(node.target.id, []).append(node.value)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        found.setdefault(target.id, []).append(node.value)
    return found


# ---------------------------------------------------------------------------------------------------------------
# rendering


def placeholder(node: ast.AST) -> str:
    """A ``{name}`` for an expression whose value the code fills in at run time."""
    return "{" + _placeholder_name(node) + "}"


_PASS_THROUGH_CALLS = {"str", "repr", "redact", "_describe", "_type_name", "describe", "int", "float", "list", "sorted"}


def _placeholder_name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id.lstrip("_").lower() or "value"
    if isinstance(node, ast.Attribute):
        if node.attr == "__name__":
            return f"{_placeholder_name(node.value)}_type".replace("type_type", "type")
        return node.attr.lstrip("_") or "value"
    if isinstance(node, ast.Subscript):
        return _placeholder_name(node.value)
    if isinstance(node, ast.BoolOp):
        return _placeholder_name(node.values[0])
    if isinstance(node, ast.IfExp):
        return _placeholder_name(node.body)
    if isinstance(node, ast.BinOp):
        return _placeholder_name(node.left)
    if isinstance(node, ast.Call):
        func = _name(node.func) or "value"
        first = node.args[0] if node.args else None
        if func == "len" and first is not None:
            return f"{_placeholder_name(first)}_count"
        if func == "type" and first is not None:
            return f"{_placeholder_name(first)}_type"
        if func == "get" and isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value
        second = node.args[1] if len(node.args) > 1 else None
        if func == "getattr" and isinstance(second, ast.Constant) and isinstance(second.value, str):
            return second.value
        if isinstance(node.func, ast.Attribute) and func in {
            "join",
            "strip",
            "rstrip",
            "lower",
            "upper",
            "get",
            "split",
        }:
            return _placeholder_name(first if func == "join" and first is not None else node.func.value)
        if (func in _PASS_THROUGH_CALLS or func.startswith("describe")) and first is not None:
            return _placeholder_name(first)
        return func.lstrip("_") or "value"
    return "value"


class Renderer:
    def __init__(self, code: Codebase):
        self.code = code

    # the text an expression stands for: every variant the code can produce
    def text(self, node: ast.AST | None, scope: Scope, *, direct: bool = True) -> list[str]:
        if node is None:
            return []
        if isinstance(node, ast.Constant):
            return [node.value] if isinstance(node.value, str) else []
        if isinstance(node, ast.JoinedStr):
            parts = [self._fstring_part(v, scope) for v in node.values]
            return _product(parts)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.text(node.left, scope, direct=direct), self.text(node.right, scope, direct=direct)
            return _product([left, right]) if left and right else []
        if isinstance(node, ast.IfExp):
            return _unique(self.text(node.body, scope) + self.text(node.orelse, scope))
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
            return _unique([t for v in node.values for t in self.text(v, scope)])
        if isinstance(node, ast.Name):
            return self._name(node, scope, direct=direct)
        if isinstance(node, ast.Attribute) and direct:
            values = scope.module.class_attrs.get(node.attr, [])
            return _unique([t for v in values for t in self.text(v, scope, direct=False)]) or [placeholder(node)]
        if isinstance(node, ast.Call) and direct:
            return self._call(node, scope)
        return [placeholder(node)]

    def _fstring_part(self, value: ast.AST, scope: Scope) -> list[str]:
        if isinstance(value, ast.Constant):
            return [str(value.value)]
        assert isinstance(value, ast.FormattedValue)
        return self.placeholder_text(value.value, scope)

    def placeholder_text(self, node: ast.AST, scope: Scope) -> list[str]:
        """A placeholder's variants: a parameter given text at its call sites, a dict of sentences, else ``{name}``."""
        if isinstance(node, ast.Name) and scope.function is not None and node.id in scope.function.params:
            return self._parameter(node, scope)
        table = None
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            table = node.value.id
        elif isinstance(node, ast.Call) and _name(node.func) == "get" and isinstance(node.func, ast.Attribute):
            table = node.func.value.id if isinstance(node.func.value, ast.Name) else None
        if table in scope.module.dicts:
            return _unique(scope.module.dicts[table])
        local = self._text_local(node, scope)
        if local:
            return local
        if isinstance(node, ast.IfExp):
            body, orelse = self.text(node.body, scope, direct=False), self.text(node.orelse, scope, direct=False)
            if all(_is_text(n) for n in (node.body, node.orelse)):
                return _unique(body + orelse)
        return [placeholder(node)]

    def _text_local(self, node: ast.AST, scope: Scope) -> list[str]:
        """A local variable that is only ever assigned text (``where = f"in/tables/{name}"``): that text."""
        if not isinstance(node, ast.Name) or scope.function is None:
            return []
        values = [
            n.value
            for n in ast.walk(scope.function.node)
            if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == node.id for t in n.targets)
        ]
        if not values or not all(_is_text(v, deep=True) for v in values):
            return []
        texts = _unique([t for v in values for t in self.text(v, scope, direct=False)])
        return [] if "" in texts else texts  # an optional piece (``more = "" if ...``) stays a placeholder

    def _name(self, node: ast.Name, scope: Scope, *, direct: bool) -> list[str]:
        function = scope.function
        if function is not None and node.id in function.params:
            return self._parameter(node, scope)
        if direct and function is not None:
            values = [
                n.value
                for n in ast.walk(function.node)
                if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == node.id for t in n.targets)
            ]
            found = _unique([t for v in values for t in self.text(v, scope)])
            if found:
                return found
        return [placeholder(node)]

    def _parameter(self, node: ast.Name, scope: Scope) -> list[str]:
        bound = scope.bound(node.id)
        if bound is not None:
            arg, arg_scope = _resolve(*bound)
            if _is_text(arg, deep=True):  # text passed in: part of the message; else the parameter's own name
                return self.text(arg, arg_scope, direct=False)
        return [placeholder(node)]

    def _call(self, node: ast.Call, scope: Scope) -> list[str]:
        name = _name(node.func)
        if name == FAILURE_SENTENCE:
            return self.failure_sentence(node, scope)
        if (name or "").lstrip("_") in {"redact", "str"} and node.args and _is_text(node.args[0], deep=True):
            return self.text(node.args[0], scope)  # redact(f"...") keeps the words, hides the secrets
        candidates = self.code.functions.get(name or "", [])
        if isinstance(node.func, ast.Name) and len(candidates) == 1 and scope.depth < MAX_DEPTH:
            function = candidates[0]
            inner = Scope(function.module, function, _bind(function, node, scope), scope.depth + 1)
            returns = [n.value for n in ast.walk(function.node) if isinstance(n, ast.Return) and n.value is not None]
            texts = _unique([t for r in returns for t in self.text(r, inner)])
            if texts:
                return texts
        return [placeholder(node)]

    def failure_sentence(self, node: ast.Call, scope: Scope) -> list[str]:
        """``describe_failure(exc, action, table_id)``: "<Action> [table|bucket] <id> failed: {detail}."."""
        function = self._failure_function()
        bound = dict(_bind(function, node, scope))
        actions = self._bound_text(bound.get("action"))
        table_node, table_scope = _resolve(*bound.get("table_id", (None, scope)))
        out = []
        for action in actions:
            what = action
            if table_node is not None and not (isinstance(table_node, ast.Constant) and table_node.value is None):
                noun = "bucket" if action.endswith(" bucket") else "table"
                table = (
                    self.text(table_node, table_scope, direct=False)[0]
                    if isinstance(table_node, ast.JoinedStr)
                    else "{" + noun + "}"
                )
                what = f"{action} {table}" if action.endswith(f" {noun}") else f"{action} {noun} {table}"
            out.append(f"{what[:1].upper()}{what[1:]} failed: {{detail}}.")
        return out

    def _bound_text(self, bound: tuple[ast.expr, Scope] | None) -> list[str]:
        if bound is None:
            return ["{action}"]
        arg, arg_scope = bound
        return self.text(arg, arg_scope, direct=False)

    def _failure_function(self) -> Function:
        found = [f for f in self.code.functions.get(FAILURE_SENTENCE, []) if f.module.rel == "workflows/context.py"]
        if len(found) != 1 or found[0].params[:3] != ["exc", "action", "table_id"]:
            raise ExtractorError(
                "workflows/context.py no longer defines describe_failure(exc, action, table_id); teach "
                "scripts/error_messages.py how Storage API failures are worded now."
            )
        source = ast.unparse(found[0].node)
        if "failed: " not in source:
            raise ExtractorError("describe_failure no longer words its sentence as '<action> failed: <detail>'.")
        return found[0]


def _resolve(node: ast.AST | None, scope: Scope) -> tuple[ast.AST | None, Scope]:
    """Follow a parameter to what the call site passed (``table_id`` -> ``item.source``)."""
    for _ in range(MAX_DEPTH):
        if not (isinstance(node, ast.Name) and scope.function is not None and node.id in scope.function.params):
            break
        bound = scope.bound(node.id)
        if bound is None:
            break
        node, scope = bound
    return node, scope


def _is_text(node: ast.AST | None, *, deep: bool = False) -> bool:
    if isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str)):
        return True
    if deep and isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _is_text(node.left, deep=True) and _is_text(node.right, deep=True)
    if deep and isinstance(node, ast.IfExp):
        return _is_text(node.body, deep=True) and _is_text(node.orelse, deep=True)
    return False


def _bind(function: Function, call: ast.Call, scope: Scope) -> tuple[tuple[str, tuple[ast.expr, Scope]], ...]:
    params = function.params
    if params and params[0] in ("self", "cls") and isinstance(call.func, ast.Attribute):
        params = params[1:]
    bound: dict[str, tuple[ast.expr, Scope]] = {}
    for name, arg in zip(params, call.args):
        if not isinstance(arg, ast.Starred):
            bound[name] = (arg, scope)
    for keyword in call.keywords:
        if keyword.arg:
            bound[keyword.arg] = (keyword.value, scope)
    for name in params:
        if name not in bound and function.default(name) is not None:
            bound[name] = (function.default(name), Scope(function.module, function))
    return tuple(bound.items())


def _product(parts: list[list[str]]) -> list[str]:
    if any(not p for p in parts):
        return []
    return _unique("".join(c) for c in itertools.islice(itertools.product(*parts), MAX_VARIANTS))


def _unique(texts: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(texts))


def _format_template(template: str) -> str:
    """A ``str.format`` template as the user reads it: fields without their format spec, ``{{`` as ``{``."""
    out = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        return template
    for literal, field_name, _spec, _conversion in parsed:
        out.append(literal)
        if field_name is not None:
            out.append("{" + field_name + "}")
    return "".join(out)


_PERCENT = re.compile(r"%(?:\([^)]*\))?[-+ #0]*(?:\d+|\*)?(?:\.\d+)?[sdrifgxX%]")


def _percent_format(template: str, args: list[list[str]]) -> list[str]:
    pieces: list[list[str]] = []
    position = 0
    queue = list(args)
    for match in _PERCENT.finditer(template):
        pieces.append([template[position : match.start()]])
        if match.group() == "%%":
            pieces.append(["%"])
        else:
            pieces.append(queue.pop(0) if queue else ["{value}"])
        position = match.end()
    pieces.append([template[position:]])
    return _product(pieces)


# ---------------------------------------------------------------------------------------------------------------
# finding the messages


def _is_super_init(call: ast.Call) -> bool:
    func = call.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "__init__"
        and isinstance(func.value, ast.Call)
        and _name(func.value.func) == "super"
    )


def _has_text(text: str) -> bool:
    return bool(re.search(r"[A-Za-z]{2,}", re.sub(r"\{[^{}]*\}", "", text)))


def _tidy(texts: list[str]) -> list[str]:
    """Drop a variant that only lacks the final period another variant has (``text if text.endswith('.')``)."""
    kept = set(texts)
    return [t for t in texts if not (not t.endswith(".") and f"{t}." in kept)]


def extract(code: Codebase | None = None) -> list[Message]:
    """Every user-facing message of the code base (``src/`` by default), ordered by module and first line."""
    code = code or Codebase.from_dir()
    renderer = Renderer(code)
    found: dict[str, Message] = {}
    for module in code.modules:
        for node in ast.walk(module.tree):
            if not isinstance(node, ast.Call):
                continue
            function, klass = code.enclosing(module, node)
            kind, texts = _message_of(node, module, function, klass, code, renderer)
            if kind is None:
                continue
            where = f"{module.rel}:{function.qualname if function else '<module>'}:{node.lineno}"
            for text in _tidy(texts):
                text = normalise(text)
                if not _has_text(text):
                    continue
                mid = message_id(text)
                message = found.setdefault(mid, Message(mid, text, kind))
                if where not in message.locations:
                    message.locations.append(where)
    return sorted(found.values(), key=lambda m: (m.module, _line(m.locations[0]), m.text))


def _line(location: str) -> int:
    return int(location.rsplit(":", 1)[1])


def _message_of(node, module, function, klass, code, renderer) -> tuple[str | None, list[str]]:
    func_name = _name(node.func)
    # a log line at warning level or above
    if (
        isinstance(node.func, ast.Attribute)
        and node.func.attr in LOG_LEVELS
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in LOGGER_NAMES
        and node.args
    ):
        level = LOG_LEVELS[node.func.attr]
        texts = []
        for scope in _scopes(code, module, function):
            templates = renderer.text(node.args[0], scope, direct=False)
            args = [
                renderer.text(a, scope, direct=False) if _is_text(a) else renderer.placeholder_text(a, scope)
                for a in node.args[1:]
            ]
            for template in templates:
                texts += _percent_format(template, args) if node.args[1:] else [template]
        return ("warning" if level == "warning" else "log-error"), _unique(texts)
    # an exception whose text the user reads
    carrier = func_name in code.carriers or (_is_super_init(node) and klass is not None and klass.name in code.carriers)
    if not carrier:
        return None, []
    arg = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "message"), None)
    if arg is None:
        return None, []
    if _is_super_init(node) and isinstance(arg, ast.Name) and function is not None and arg.id in function.params:
        return None, []  # the base class passing its caller's message on
    texts = []
    for scope in _scopes(code, module, function):
        texts += renderer.text(arg, scope)
    if func_name in TEMPLATE_CARRIERS:
        texts = [_format_template(t) for t in texts]
    return "error", _unique(texts)


def _scopes(code: Codebase, module: Module, function: Function | None) -> list[Scope]:
    """One scope per call site that passes text into a parameter the message uses; else the function's own."""
    if function is None:
        return [Scope(module, None)]
    sites = []
    for call, call_module in code.call_sites(function):
        outer, _ = code.enclosing(call_module, call)
        sites.append(Scope(function.module, function, _bind(function, call, Scope(call_module, outer)), 1))
    return sites or [Scope(module, function)]


# ---------------------------------------------------------------------------------------------------------------
# the guide


def guide_ids(text: str) -> list[str]:
    return ID_MARK.findall(text)


def check_guide(messages: list[Message], guide_text: str) -> list[str]:
    """Problems of the guide: messages missing (id, or exact text in backticks), ids it lists that the code lacks."""
    problems = []
    listed = set(guide_ids(guide_text))
    flat = normalise(guide_text.replace("\\|", "|"))
    for message in messages:
        if message.id not in listed:
            problems.append(f"missing from the guide: {message.id}: {message.text} ({message.locations[0]})")
        elif f"`{message.text}`" not in flat:
            problems.append(f"the guide's text of {message.id} is not the code's: `{message.text}`")
    known = {m.id for m in messages}
    for mid in sorted(listed - known):
        problems.append(f"in the guide but no longer in the code: {mid}")
    return problems


def to_markdown(messages: list[Message]) -> str:
    lines = [f"# User-facing messages ({len(messages)})", ""]
    for module, group in itertools.groupby(messages, key=lambda m: m.module):
        lines += [f"## {module}", ""]
        for message in group:
            where = ", ".join(loc.split(":", 1)[1] for loc in message.locations)
            lines.append(f"- <!-- id: {message.id} --> `{message.text}` ({message.kind}; {where})")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", metavar="GUIDE", type=Path, help="exit 1 when the guide misses a message")
    parser.add_argument("--src", type=Path, default=SRC, help="the source folder (default: src/)")
    options = parser.parse_args(argv)
    messages = extract(Codebase.from_dir(options.src))
    if options.check is None:
        print(to_markdown(messages))
        return 0
    problems = check_guide(messages, options.check.read_text(encoding="utf-8"))
    for problem in problems:
        print(problem)
    print(f"{len(messages)} messages in the code; {len(problems)} problem(s) with {options.check}.")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
