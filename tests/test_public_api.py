"""core/ uses only the public APIs of pandas, zarr, numcodecs, numba and pyarrow.

Each rule scans the source of every module under core/ (its syntax tree, plus the text of its
string constants other than docstrings) and fails naming every offending file and line:

- no ``pandas.core.*`` or ``zarr.core.*`` module, imported or named in a string;
- no private pandas/zarr/numcodecs internals (``_mgr``, ``_simple_new``, ...), as an attribute,
  an imported name or a string given to ``getattr``-style calls;
- no ``gc.disable()`` / ``gc.freeze()`` in library code;
- numba only in the store's write-only modules (``WRITE_ONLY_NUMBA``), never on the read path;
  and a real read of every kind in a fresh process loads none of the store modules that
  import numba;
- zarr only inside core/store/ (and the price cache, core/data/prices.py).
"""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "core"

#: Private internals the store once used; none may come back.
PRIVATE_NAMES = frozenset({
    "_mgr", "_simple_new", "_from_mgr", "_from_pyarrow_array", "_get_column_array",
    "_concat_same_type", "_get_chunk_config",
})
#: Modules whose insides are not a public API.
PRIVATE_MODULES = ("pandas.core", "zarr.core")
#: core/store modules that may import numba: write-only packing code, never loaded by a read.
WRITE_ONLY_NUMBA = frozenset({"_curvepack"})
#: Outside core/store/, only these files may import zarr (the price cache, moving to core/data).
ZARR_OUTSIDE_STORE = frozenset({"core/data/prices.py"})

_PRIVATE_MODULE_TEXT = re.compile(r"\b(?:pandas|zarr)\.core\b")
_PRIVATE_NAME_TEXT = re.compile(r"(?<![\w.])(?:%s)\b" % "|".join(sorted(PRIVATE_NAMES)))


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


@dataclass
class Module:
    path: Path
    rel: str
    tree: ast.Module

    @property
    def in_store(self) -> bool:
        return self.rel.startswith("core/store/")

    @property
    def stem(self) -> str:
        return self.path.stem


def core_modules() -> list[Module]:
    out = []
    for path in sorted(CORE.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        rel = path.relative_to(ROOT).as_posix()
        out.append(Module(path, rel, ast.parse(path.read_text(encoding="utf-8"), filename=rel)))
    assert out, f"no modules found under {CORE}"
    return out


def docstring_nodes(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (prose may name what is not used)."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                ids.add(id(body[0].value))
    return ids


def imported_modules(tree: ast.AST):
    """(node, dotted module name) of every import, including ``from a import b`` as ``a.b``
    and ``importlib.import_module("a.b")`` / ``__import__("a.b")`` with a literal name."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative imports stay inside core
                continue
            base = node.module or ""
            yield node, base
            for alias in node.names:
                yield node, f"{base}.{alias.name}"
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in ("import_module", "__import__"):
                yield node, node.args[0].value


def _is_module(name: str, module: str) -> bool:
    return name == module or name.startswith(module + ".")


def module_aliases(tree: ast.AST, module: str) -> set[str]:
    """Local names bound to ``module`` (``import gc``, ``import gc as g``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == module:
                    names.add(alias.asname or alias.name)
    return names


def dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


# --- the rules ------------------------------------------------------------------------------

def private_module_uses(mod: Module) -> list[Finding]:
    found, seen = [], set()
    for node, name in imported_modules(mod.tree):
        if any(_is_module(name, m) for m in PRIVATE_MODULES) and id(node) not in seen:
            seen.add(id(node))  # ``from a.core.b import c``: one finding, naming a.core.b
            found.append(Finding(mod.rel, node.lineno, f"imports private module {name}"))
    pandas_names = module_aliases(mod.tree, "pandas") | {"pandas"}
    zarr_names = module_aliases(mod.tree, "zarr") | {"zarr"}
    docs = docstring_nodes(mod.tree)
    for node in ast.walk(mod.tree):
        if isinstance(node, ast.Attribute) and node.attr == "core":
            base = dotted(node.value)
            if base in pandas_names or base in zarr_names:
                found.append(Finding(mod.rel, node.lineno, f"uses private module {base}.core"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in docs and _PRIVATE_MODULE_TEXT.search(node.value):
            found.append(Finding(mod.rel, node.lineno,
                                 f"names a private module in a string: {node.value[:80]!r}"))
    return found


def private_name_uses(mod: Module) -> list[Finding]:
    found = []
    docs = docstring_nodes(mod.tree)
    for node in ast.walk(mod.tree):
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE_NAMES:
            found.append(Finding(mod.rel, node.lineno, f"uses private attribute .{node.attr}"))
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name in PRIVATE_NAMES:
                    found.append(Finding(mod.rel, node.lineno, f"imports private {alias.name}"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in docs and _PRIVATE_NAME_TEXT.search(node.value):
            found.append(Finding(mod.rel, node.lineno,
                                 f"names a private internal in a string: {node.value[:80]!r}"))
    return found


def gc_pauses(mod: Module) -> list[Finding]:
    found = []
    gc_names = module_aliases(mod.tree, "gc")
    for node in ast.walk(mod.tree):
        if isinstance(node, ast.ImportFrom) and node.module == "gc":
            for alias in node.names:
                if alias.name in ("disable", "freeze", "*"):
                    found.append(Finding(mod.rel, node.lineno, f"imports gc.{alias.name}"))
        elif isinstance(node, ast.Attribute) and node.attr in ("disable", "freeze") \
                and dotted(node.value) in gc_names:
            found.append(Finding(mod.rel, node.lineno, f"calls gc.{node.attr}()"))
    return found


def imports_numba(mod: Module) -> list[int]:
    lines = [node.lineno for node, name in imported_modules(mod.tree)
             if _is_module(name, "numba")]
    docs = docstring_nodes(mod.tree)
    for node in ast.walk(mod.tree):  # numba named in other strings (a lazy import by name)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs \
                and re.fullmatch(r"numba(\.\w+)*", node.value):
            lines.append(node.lineno)
    return sorted(set(lines))


def numba_on_read_path(mod: Module) -> list[Finding]:
    if not mod.in_store or mod.stem in WRITE_ONLY_NUMBA:
        return []
    return [Finding(mod.rel, line, "imports numba in a store module that is not write-only "
                    f"(allowed only in {sorted(WRITE_ONLY_NUMBA)})")
            for line in imports_numba(mod)]


def zarr_outside_store(mod: Module) -> list[Finding]:
    if mod.in_store or mod.rel in ZARR_OUTSIDE_STORE:
        return []
    lines = sorted({node.lineno for node, name in imported_modules(mod.tree)
                    if _is_module(name, "zarr")})
    return [Finding(mod.rel, line, "imports zarr outside core/store/") for line in lines]


RULES = {
    "private pandas/zarr modules": private_module_uses,
    "private internals": private_name_uses,
    "garbage-collector pauses": gc_pauses,
    "numba on the store's read path": numba_on_read_path,
    "zarr outside the store": zarr_outside_store,
}


@pytest.mark.parametrize("rule", list(RULES))
def test_core_uses_public_apis_only(rule):
    check = RULES[rule]
    findings = [str(f) for mod in core_modules() for f in check(mod)]
    assert not findings, f"{rule} in core/ ({len(findings)}):\n" + "\n".join(findings)


# --- the rules themselves catch what they are for ----------------------------------------

SAMPLES = {
    "private pandas/zarr modules": [
        "from pandas.core.internals.blocks import NumpyBlock",
        "import zarr.core.sync",
        "from zarr.core.buffer import default_buffer_prototype",
        "import pandas as pd\nx = pd.core.arrays",
        "PIPE = 'zarr.core.codec_pipeline.FusedCodecPipeline'",
        "import importlib\nm = importlib.import_module('pandas.core.internals')",
    ],
    "private internals": [
        "x = frame._mgr",
        "y = pd.DataFrame._from_mgr(m, m.axes)",
        "z = getattr(frame, '_get_column_array', None)",
        "c = codec._get_chunk_config()",
        "from pandas.core.arrays import _simple_new",
    ],
    "garbage-collector pauses": [
        "import gc\ngc.disable()",
        "import gc as g\ng.freeze()",
        "from gc import disable",
    ],
    "numba on the store's read path": [
        "from numba import njit",
        "import numba",
        "import importlib\nimportlib.import_module('numba')",
    ],
    "zarr outside the store": [
        "import zarr",
        "from zarr.storage import LocalStore",
    ],
}

CLEAN = [
    '"""Built without _simple_new or pandas.core (docstrings may say what is not used)."""\n'
    "import pandas as pd\nimport gc\ngc.collect()\nx = pd.DataFrame({'a': [1]})\n"
    "y = x.mgr_count\n",
]


def _check_sample(rule: str, source: str, rel: str) -> list[Finding]:
    path = ROOT / rel
    return RULES[rule](Module(path, rel, ast.parse(source)))


@pytest.mark.parametrize("rule", list(RULES))
def test_rules_find_each_sample(rule):
    rel = "core/store/_sample.py" if rule != "zarr outside the store" else "core/sample.py"
    for source in SAMPLES[rule]:
        findings = _check_sample(rule, source, rel)
        assert findings, f"rule {rule!r} missed: {source!r}"
        assert all(f.path == rel and f.line >= 1 for f in findings)
    for source in CLEAN:
        assert not _check_sample(rule, source, rel), f"rule {rule!r} flagged clean code"


def test_allow_lists_are_narrow():
    assert not _check_sample("numba on the store's read path", "import numba",
                             "core/store/_curvepack.py")
    assert not _check_sample("numba on the store's read path", "import numba", "core/kernels.py")
    assert not _check_sample("zarr outside the store", "import zarr", "core/data/prices.py")
    assert not _check_sample("zarr outside the store", "import zarr", "core/store/x.py")
    assert _check_sample("zarr outside the store", "import zarr", "core/data/cached.py")


# --- the read path, observed -----------------------------------------------------------------

READER = textwrap.dedent("""
    import json, sys
    from core.store import open_store
    store = open_store(sys.argv[1], mode="r")
    frame = store.get_all_stats(include_history=True)
    row = frame.iloc[0]
    key = (str(row["symbol"]), str(row["strategy"]), json.loads(row["params"]),
           json.loads(row["exit_rule"]))
    assert store.get_stats(*key) is not None
    store.bulk_get_stats([key, key])
    store.bulk_get_stats(frame[["symbol", "strategy", "params_hash", "exit_hash"]].head(3))
    store.history(*key)
    store.query(strategy=key[1], where="num_trades >= 0", order_by="-sharpe_ratio", limit=5)
    store.count()
    for bid in frame["backtest_id"].astype(str).head(5):
        store.get_detailed_results(bid)
    store.close()
    print(json.dumps(sorted(m for m in sys.modules if m.startswith("core.store."))))
""")


def test_reads_load_no_store_module_that_imports_numba(tmp_path):
    """Every read API in a fresh process: none of the store modules it loads imports numba."""
    import shutil

    store = tmp_path / "store.zarr"
    shutil.copytree(ROOT / "tests" / "store" / "fixtures" / "format2_store.zarr", store)
    proc = subprocess.run([sys.executable, "-c", READER, str(store)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    by_name = {f"core.store.{m.stem}": m for m in core_modules()
               if m.in_store and m.stem != "__init__"}
    with_numba = [name for name in loaded if name in by_name and imports_numba(by_name[name])]
    assert not with_numba, f"reads loaded store modules that import numba: {with_numba}"
