"""The tree's shape: the layering and the one-of-each rules that review found broken once (issue 14).

These read the source (AST and tokens); nothing is imported, so they run in milliseconds and name the line that
breaks a rule.
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

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
NOT_TIMEBASE = {("app/main_window.py", "(640, 480)"), ("core/engine/sinks.py", "AAC_RATES")}


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
