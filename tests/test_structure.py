"""The tree's shape: the layering and the one-of-each rules that review found broken once (issue 14).

These read the source (AST and tokens); nothing is imported, so they run in milliseconds and name the line that
breaks a rule.
"""

from __future__ import annotations

import ast
import io
import sys
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "app", "training", "resources")


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _resolve(module: str, node: ast.ImportFrom | ast.Import, is_package: bool) -> list[str]:
    """Project modules named by one import statement (relative imports resolved; `from a import b` may be a
    submodule b of package a or a name in a)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        anchor = module.split(".")
        if not is_package:
            anchor = anchor[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
    names = [base]
    names += [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES]
    return names


def _imports(module: str, top_level_only: bool) -> set[str]:
    """Project modules `module` imports: every import statement, or only those run when it is imported (module
    body, not function bodies and not `if TYPE_CHECKING:` blocks)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    statements: list[ast.AST] = []
    if top_level_only:
        todo = list(tree.body)
        while todo:
            node = todo.pop()
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                todo.extend(node.orelse)
            elif isinstance(node, (ast.If, ast.Try)):
                todo.extend(node.body + node.orelse + getattr(node, "finalbody", []))
                for handler in getattr(node, "handlers", []):
                    todo.extend(handler.body)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                statements.append(node)
    else:
        statements = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    out: set[str] = set()
    for node in statements:
        for name in _resolve(module, node, is_package):
            while name and name not in MODULES:  # `import core.motion.source` names the module; trim attributes
                name = name.rpartition(".")[0]
            if name and name != module:
                out.add(name)
    return out


def test_the_import_walk_sees_the_tree():
    assert "core.render" in MODULES and "core.timebase" in MODULES and "training.train" in MODULES
    assert "core.timebase" in _imports("core.engine.engine", top_level_only=True)


def test_speech_and_motion_never_import_the_renderer_or_its_networks():
    banned = ("core.render", "core.liveportrait", "core.engine", "app")
    offenders = []
    for module in MODULES:
        if module.startswith(("core.motion", "core.audio")):
            for target in _imports(module, top_level_only=False):
                if target.startswith(banned):
                    offenders.append(f"{module} imports {target}")
    assert not offenders, "speech/motion must not depend on the renderer:\n" + "\n".join(offenders)


def test_the_renderer_and_networks_never_import_motion():
    offenders = [
        f"{module} imports {target}"
        for module in MODULES
        if module == "core.render" or module.startswith("core.liveportrait")
        for target in _imports(module, top_level_only=False)
        if target.startswith(("core.motion", "core.audio", "app", "training"))
    ]
    assert not offenders, "\n".join(offenders)


def test_core_never_imports_the_app_or_training():
    offenders = [
        f"{module} imports {target}"
        for module in MODULES
        if module.startswith("core")
        for target in _imports(module, top_level_only=False)
        if target.startswith(("app", "training"))
    ]
    assert not offenders, "\n".join(offenders)


def test_no_import_cycles():
    graph = {module: _imports(module, top_level_only=False) for module in MODULES}
    # a package's __init__ importing its own submodules is how packages work; the edge back from a submodule to
    # its package's __init__ (`from core.motion import x` inside core/motion/y.py) is the cycle to catch, so
    # keep both and only ignore the package -> own submodule edges.
    for module, targets in graph.items():
        graph[module] = {t for t in targets if not t.startswith(module + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


# numbers that are the shared timebase when they appear in code: the sample rate and the samples per frame.
TIMEBASE_NUMBERS = {"16000", "640"}
# (file, code-line fragment) where such a number means something else
NOT_TIMEBASE = {("app/settings_panel.py", "(640, 480)"), ("core/engine/sinks.py", "AAC_RATES")}


def test_timebase_numbers_are_defined_once():
    offenders = []
    for module, path in MODULES.items():
        rel = path.relative_to(ROOT).as_posix()
        if module == "core.timebase":
            continue
        tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
        previous: list[tokenize.TokenInfo] = []
        for tok in tokens:
            if tok.type == tokenize.NUMBER:
                value = tok.string.replace("_", "")
                is_fps_default = (value == "25" and len(previous) >= 2 and previous[-1].string in ("=", ":")
                                  and "fps" in previous[-2].string.lower())
                is_fps_default |= (value == "25" and len(previous) >= 3 and previous[-1].string == "="
                                   and "fps" in previous[-3].string.lower() and previous[-2].string in ("int", "float"))
                if value in TIMEBASE_NUMBERS or is_fps_default:
                    if not any(rel == f and frag in tok.line for f, frag in NOT_TIMEBASE):
                        offenders.append(f"{rel}:{tok.start[0]}: {tok.line.strip()}")
            if tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT):
                previous = (previous + [tok])[-3:]
    assert not offenders, "import these from core.timebase instead:\n" + "\n".join(offenders)


def test_files_are_written_atomically_through_one_helper():
    offenders = []
    for module, path in MODULES.items():
        if module == "core.atomic":
            continue
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if "os.replace(" in code or "mkstemp(" in code:
                offenders.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert not offenders, "use core.atomic instead of a hand-made temp + rename:\n" + "\n".join(offenders)


def test_one_diffusion_toolkit():
    """One cosine schedule, one step-striding function, one guidance function, one sinusoid table: all in
    core/motion/diffusion.py (DiT, JoyVASA, training and evaluation import them)."""
    kinds = {"schedule": ("cosine",), "striding": ("strid",), "guidance": ("guid", "cfg"), "sinusoid": ("sinusoid",)}
    found: dict[str, list[str]] = {kind: [] for kind in kinds}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                if any(ast.unparse(d) == "property" for d in node.decorator_list):
                    continue  # a setting read back (e.g. a source's cfg_scale), not a mechanism
                name = node.name.lower()
                for kind, words in kinds.items():
                    if isinstance(node, ast.ClassDef) and kind != "schedule":
                        continue  # e.g. a module holding the shared table as a checkpoint buffer
                    if any(w in name for w in words) and not name.startswith(("test", "_test")):
                        found[kind].append(f"{module}.{node.name}")
    for kind, defs in found.items():
        outside = [d for d in defs if not d.startswith("core.motion.diffusion.")]
        assert outside == [], f"{kind} defined outside core/motion/diffusion.py: {outside}"
        assert defs, f"no {kind} in core/motion/diffusion.py"


# ---------------------------------------------------------------- issue 23: sizes a reader can take in one sitting
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 80
LIFECYCLE_FILES = sorted([*(ROOT / "core" / "engine").glob("*.py"), ROOT / "core" / "session.py",
                          *(ROOT / "app").glob("*.py")])


def _too_long(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    found = []
    lines = len(text.splitlines())
    if lines > MAX_FILE_LINES:
        found.append(f"{path.relative_to(ROOT)}: {lines} lines (at most {MAX_FILE_LINES})")
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > MAX_FUNCTION_LINES:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.name} is {n} lines "
                             f"(at most {MAX_FUNCTION_LINES})")
    return found


@pytest.mark.parametrize("path", LIFECYCLE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_engine_session_and_app_files_and_functions_are_short(path):
    assert not _too_long(path), "\n".join(_too_long(path))


def test_the_size_rule_catches_a_long_file_and_a_long_function(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    long = tmp_path / "long.py"
    long.write_text("def f():\n" + body + "\n" + "\n" * MAX_FILE_LINES)
    found = _too_long(long)
    assert any("lines (at most 400)" in f for f in found) and any("f is 81 lines" in f for f in found)


def test_nothing_probes_a_renderer_source_or_sink():
    """Renderers, motion/audio sources and sinks meet through Protocols (core/engine/contracts.py,
    core/motion/source.py): no `__getattr__` forwarding and no hasattr/getattr on them."""
    words = ("render", "motion", "source", "sink", "portrait", "lite", "engine")
    offenders = []
    for path in sorted([*(ROOT / "core").rglob("*.py"), *(ROOT / "app").rglob("*.py")]):
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if '"""' in code or code.strip().startswith(("`", "*")):
                continue
            for call in ("hasattr(", "getattr("):
                at = code.find(call)
                if at >= 0 and any(w in code[at:code.find(")", at) + 1].lower() for w in words):
                    offenders.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
            if "def __getattr__" in code and "core/backends/__init__.py" not in str(path):
                offenders.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert not offenders, "probing instead of an interface:\n" + "\n".join(offenders)


# (file, expression) where an app module reads another object's underscore name on purpose, with the reason
READS_PRIVATE_ON_PURPOSE = {
    # attaching qasync's loop to a Qt loop that already runs: asyncio has no public way to mark a loop as the
    # thread's running one (qasync's own run_forever does the same around app.exec())
    ("app/tasks.py", "asyncio._get_running_loop"),
    ("app/tasks.py", "asyncio._set_running_loop"),
}


def _private_reads(path: Path) -> list[str]:
    """`x._name` in `path` where x is not `self`/`cls` (dunders like `__name__` are public protocol)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
            found.append((path.relative_to(ROOT).as_posix(), node.lineno, ast.unparse(node)))
    return [f"{rel}:{line}: {expr}" for rel, line, expr in found if (rel, expr) not in READS_PRIVATE_ON_PURPOSE]


def test_no_app_module_reads_another_objects_private_names():
    """Each app object is the one owner of its state: another module asks it through public methods (issue 23;
    app/look_preview.py once read the bridge's `_preview_request`, `_preview_busy` and `_render_lock`)."""
    offenders = [hit for path in sorted((ROOT / "app").rglob("*.py")) for hit in _private_reads(path)]
    assert not offenders, "read through a public method or property instead:\n" + "\n".join(offenders)


def test_the_private_read_rule_catches_a_read_through_another_object(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    module = tmp_path / "m.py"
    module.write_text("def f(self, bridge):\n    self._ok = type(self).__name__\n    return bridge._busy\n")
    assert _private_reads(module) == ["m.py:3: bridge._busy"]
